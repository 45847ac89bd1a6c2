import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeAdapterConfig, writeSafetensors } from '@peft/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, MODEL_FIXTURES, peft } from './test/run_cli.js';

const GPT2 = `${MODEL_FIXTURES}/gpt2-tiny`;
let tmp: string;

/** A copy of the gpt2-tiny fixture with its config changed (or replaced by `configText`). */
function brokenModel(name: string, change: Record<string, unknown> | string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  copyFileSync(`${GPT2}/model.safetensors`, join(dir, 'model.safetensors'));
  const config = JSON.parse(readFileSync(`${GPT2}/config.json`, 'utf8'));
  writeFileSync(
    join(dir, 'config.json'),
    typeof change === 'string' ? change : JSON.stringify({ ...config, ...change }),
  );
  return dir;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'peft-cli-errors-'));
  brokenModel('bert', { model_type: 'bert' });
  brokenModel('wide', { n_embd: 64 });
  brokenModel('bad-json', '{"model_type": "gpt2",');
  truncateSync(join(brokenModel('truncated', {}), 'model.safetensors'), 100_000);
  const adapter = join(tmp, 'adapter-nope');
  mkdirSync(adapter);
  writeFileSync(join(adapter, 'adapter_config.json'), serializeAdapterConfig({ peft_type: 'NOPE' }));
  writeFileSync(
    join(adapter, 'adapter_model.safetensors'),
    writeSafetensors(new Map([['x', { dtype: 'F32', shape: [1], data: [0] }]]), { format: 'pt' }),
  );
  mkdirSync(join(tmp, 'out-not-empty'));
  writeFileSync(join(tmp, 'out-not-empty', 'keep.txt'), 'mine');
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** [what is wrong, arguments, what the one stderr line must say] */
const CASES: [string, () => string[], RegExp][] = [
  [
    'missing model folder',
    () => ['logits', '--model', join(tmp, 'nope'), '--ids', '1'],
    /model folder not found: .*nope$/,
  ],
  [
    'unknown model_type',
    () => ['logits', '--model', join(tmp, 'bert'), '--ids', '1'],
    /unsupported model_type "bert" \(supported: gpt2, llama/,
  ],
  [
    'config.json not JSON',
    () => ['generate', '--model', join(tmp, 'bad-json'), '--ids', '1'],
    /config\.json is not valid JSON/,
  ],
  [
    'truncated safetensors',
    () => ['logits', '--model', join(tmp, 'truncated'), '--ids', '1'],
    /model\.safetensors: safetensors: .*truncated/,
  ],
  // Shapes are checked as the weights load, after the backend starts: --backend skips WebGPU probing,
  // whose Vulkan driver may print its own lines.
  [
    'weights not fitting the config',
    () => ['logits', '--model', join(tmp, 'wide'), '--ids', '1', '--backend', 'cpu'],
    /does not fit its gpt2 config: .*shape/,
  ],
  ['unknown option', () => ['logits', '--model', GPT2, '--ids', '1', '--bogus'], /unknown option '--bogus'/],
  ['unknown command', () => ['logitz'], /unknown command 'logitz'.*Did you mean logits/],
  [
    'missing required option',
    () => ['merge', '--model', GPT2, '--adapter', GPT2],
    /required option '--out <dir>' not specified/,
  ],
  ['bad --ids', () => ['logits', '--model', GPT2, '--ids', '1,,2'], /--ids: "" in row 1 is not a token id/],
  [
    'token id beyond the vocabulary',
    () => ['logits', '--model', GPT2, '--ids', '1;96'],
    /token id 96 is out of range for the model's vocab_size 96/,
  ],
  [
    'bad --backend',
    () => ['logits', '--model', GPT2, '--ids', '1', '--backend', 'gpu'],
    /argument 'gpu' is invalid\. Allowed choices are cpu, wasm, webgpu/,
  ],
  [
    'bad --top-p',
    () => ['generate', '--model', GPT2, '--ids', '1', '--top-p', '1.5'],
    /'--top-p <p>' argument '1\.5' is invalid/,
  ],
  [
    'no tokenizer for --prompt',
    () => ['generate', '--model', GPT2, '--prompt', 'hi'],
    /has no tokenizer\.json: pass --tokenizer/,
  ],
  [
    'missing adapter folder',
    () => ['logits', '--model', GPT2, '--adapter', join(tmp, 'nope'), '--ids', '1'],
    /adapter folder not found/,
  ],
  [
    'model folder as --adapter',
    () => ['logits', '--model', GPT2, '--adapter', GPT2, '--ids', '1'],
    /is not an adapter folder/,
  ],
  [
    'unregistered peft_type',
    () => ['logits', '--model', GPT2, '--adapter', join(tmp, 'adapter-nope'), '--ids', '1'],
    /no registered PEFT method reads peft_type "NOPE"; known types: /,
  ],
  [
    'merge into a non-empty folder',
    () => [
      'merge',
      '--model',
      GPT2,
      '--adapter',
      join(tmp, 'adapter-nope'),
      '--out',
      join(tmp, 'out-not-empty'),
    ],
    /--out folder is not empty: .*--overwrite/,
  ],
  ['inspect of a missing path', () => ['inspect', join(tmp, 'nope')], /not found: /],
  ['inspect of a folder without a config', () => ['inspect', tmp], /not a model or adapter folder/],
];

function expectOneLine(result: CliResult, message: RegExp): void {
  expect(result.code).not.toBe(0);
  expect(result.stdout).toBe('');
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^peft: /);
  expect(lines[0]).toMatch(message);
  expect(lines[0]).not.toMatch(/internal error/);
}

describe('bad input: non-zero exit, one line on stderr, no stack trace', () => {
  it('for every case', async () => {
    // A few at a time: each run starts a Node process.
    const results: CliResult[] = [];
    for (let i = 0; i < CASES.length; i += 4)
      results.push(...(await Promise.all(CASES.slice(i, i + 4).map(([, args]) => peft(...args())))));
    for (const [i, [what, , message]] of CASES.entries()) {
      try {
        expectOneLine(results[i]!, message);
      } catch (error) {
        throw new Error(`${what}: ${(error as Error).message}\nstderr: ${results[i]!.stderr}`);
      }
    }
  });

  it('--debug adds the stack trace; usage errors exit 2, others 1', async () => {
    const [debug, usage] = await Promise.all([
      peft('logits', '--model', join(tmp, 'nope'), '--ids', '1', '--debug'),
      peft('logits', '--model', GPT2),
    ]);
    expect(debug.code).toBe(1);
    expect(debug.stderr.split('\n')[0]).toMatch(/^peft: model folder not found/);
    expect(debug.stderr).toMatch(/\n\s+at /);
    expect(usage.code).toBe(2);
  });
});
