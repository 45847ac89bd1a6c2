// moduleWorker: a TypeScript entry runs through tsx with the peft-source condition (its imports of
// workspace packages resolve), a JavaScript entry runs as it is, and workerData reaches both.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { moduleWorker, siblingModule } from './module_worker.js';

function firstMessage(worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the worker exited (code ${code}) without a message`)));
  });
}

describe('siblingModule', () => {
  it("names the module beside the caller with the caller's extension", () => {
    expect(siblingModule('file:///app/src/speed.ts', 'replica').href).toBe('file:///app/src/replica.ts');
    expect(siblingModule(new URL('file:///app/dist/speed.js'), 'replica').href).toBe(
      'file:///app/dist/replica.js',
    );
  });
});

describe('moduleWorker', () => {
  it('runs a TypeScript entry that imports a workspace package', async () => {
    const worker = moduleWorker(new URL('./module_worker.test-support.ts', import.meta.url), {
      workerData: { rows: [1, 2, 3, 4, 5] },
    });
    try {
      expect(await firstMessage(worker)).toEqual({
        shards: [
          [1, 2, 3],
          [4, 5],
        ],
      });
    } finally {
      await worker.terminate();
    }
  });

  it('runs a JavaScript entry given as a path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'module-worker-'));
    const entry = join(dir, 'double.mjs');
    writeFileSync(
      entry,
      "import { parentPort, workerData } from 'node:worker_threads';\nparentPort.postMessage(workerData * 2);\n",
    );
    const worker = moduleWorker(entry, { workerData: 21 });
    try {
      expect(await firstMessage(worker)).toBe(42);
    } finally {
      await worker.terminate();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports a failing entry's error on the worker", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'module-worker-'));
    const entry = join(dir, 'fails.mjs');
    writeFileSync(entry, "throw new Error('broken entry');\n");
    const worker = moduleWorker(entry);
    try {
      await expect(firstMessage(worker)).rejects.toThrow('broken entry');
    } finally {
      await worker.terminate();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
