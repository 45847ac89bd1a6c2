// PeerStepper's protocol with peft_step.py --serve, against a stand-in server (a shell script
// speaking the protocol: the tests need no torch): the ready line, library chatter on stdout
// skipped, one timing per step, and a clear error when the server dies.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PeerStepper } from './peer.js';
import { techniqueByName } from './techniques.js';

/** An executable standing in for python: `body` runs with the script path and its arguments. */
function fakePython(body: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'peer-')), 'python');
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

const spec = {
  model: '/nowhere',
  batch: 8,
  length: 128,
  threads: 1,
  seed: 42,
  technique: techniqueByName('lora'),
  benchSteps: 12,
};

describe('PeerStepper', () => {
  it('starts the server with the technique, skips chatter and returns one timing per step', async () => {
    const python = fakePython(`
case "$2 $3" in *'"name":"lora"'*'"r":8'*) ;; *) echo "bad arguments: $*" >&2; exit 3 ;; esac
echo '[transformers] a warning on stdout'
echo '{"ready": true, "torch": "2.13", "peft": "0.21", "threads": 1, "trainable_params": 73728}'
n=0
while read line; do
  n=$((n + 1))
  echo "{\\"seconds\\": $n.5, \\"cpu_seconds\\": $n.25}"
done`);
    const stepper = await PeerStepper.start(python, spec);
    try {
      expect([stepper.torch, stepper.peft]).toEqual(['2.13', '0.21']);
      expect(await stepper.step()).toEqual({ seconds: 1.5, cpu_seconds: 1.25 });
      expect(await stepper.step()).toEqual({ seconds: 2.5, cpu_seconds: 2.25 });
    } finally {
      stepper.close();
    }
  });

  it("names the server's last error when it ends before answering", async () => {
    const python = fakePython(`echo 'ModuleNotFoundError: No module named peft' >&2; exit 1`);
    await expect(PeerStepper.start(python, spec)).rejects.toThrow(
      /peft_step\.py --serve ended .*No module named peft/,
    );
  });

  it('refuses a technique PEFT does not have', async () => {
    await expect(
      PeerStepper.start(fakePython('exit 0'), { ...spec, technique: techniqueByName('delta-lora') }),
    ).rejects.toThrow('PEFT has no delta-lora');
  });
});
