import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@peft/core';
import { readSafetensorsFile } from '@peft/core/node';
import { createModel } from '@peft/models';
import { saveModel } from '@peft/models/node';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, peft } from './test/run_cli.js';

let tmp: string;
let model: string;
let data: string;
let tiny: string;

/** A random 2-layer GPT-2 over UTF-8 bytes, saved as a model folder. */
async function saveTinyGpt2(dir: string, overrides: Record<string, number> = {}): Promise<void> {
  const base = createModel({
    model_type: 'gpt2',
    vocab_size: 256,
    n_embd: 32,
    n_head: 2,
    n_layer: 2,
    n_positions: 64,
    ...overrides,
  });
  await saveModel(base, dir);
  base.dispose();
}

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  tf.env().set('PROD', true);
  tmp = mkdtempSync(join(tmpdir(), 'peft-cli-train-'));
  // A random GPT-2 over UTF-8 bytes and a repetitive text it can learn quickly.
  model = join(tmp, 'model');
  await saveTinyGpt2(model);
  data = join(tmp, 'data.jsonl');
  const lines = Array.from({ length: 40 }, (_, i) =>
    JSON.stringify({ text: `the cat sat on mat ${i % 3}. ` }),
  );
  writeFileSync(data, lines.join('\n'));
  tiny = join(tmp, 'tiny.txt');
  writeFileSync(tiny, 'hi');
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ok(result: CliResult): CliResult {
  expect(result.stderr).not.toMatch(/^peft:/m);
  expect(result.code).toBe(0);
  return result;
}

describe('peft train', () => {
  it('trains a LoRA adapter (loss falls), saves a PEFT folder that --adapter then applies', async () => {
    const out = join(tmp, 'lora');
    const train = ok(
      await peft(
        ...[
          'train',
          '--model',
          model,
          '--method',
          'lora',
          '--data',
          data,
          '--out',
          out,
          '--tokenizer',
          'byte',
        ],
        ...['--steps', '20', '--batch-size', '4', '--seq-len', '16', '--lr', '1e-2', '--backend', 'cpu'],
        ...[
          '--set',
          'r=4',
          '--set',
          'lora_alpha=8',
          '--set',
          'target_modules=["c_attn"]',
          '--log-every',
          '5',
        ],
      ),
    );
    expect(train.stdout).toMatch(/^trainable params: 1,024 \|\| all params: [\d,]+ \|\| trainable%: /);
    const [, first, last] = train.stdout.match(/loss ([\d.]+) -> ([\d.]+); wrote /)!;
    expect(Number(last)).toBeLessThan(Number(first));
    expect(train.stderr.match(/^step \d+\/20: loss /gm)).toHaveLength(4);

    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 8,
      target_modules: ['c_attn'],
      base_model_name_or_path: model,
      inference_mode: true,
    });
    const ids = '116,104,101,32,99,97,116';
    const [base, adapted] = await Promise.all([
      peft('logits', '--model', model, '--ids', ids, '--backend', 'cpu'),
      peft('logits', '--model', model, '--adapter', out, '--ids', ids, '--backend', 'cpu'),
    ]);
    const { tensors } = await readSafetensorsFile(join(out, 'adapter_model.safetensors'));
    expect([...tensors.values()].reduce((sum, t) => sum + t.data.length, 0)).toBe(1024);
    const baseData = JSON.parse(ok(base).stdout).data as number[];
    const adaptedData = JSON.parse(ok(adapted).stdout).data as number[];
    expect(adaptedData).toHaveLength(baseData.length);
    expect(Math.max(...adaptedData.map((v, i) => Math.abs(v - baseData[i]!)))).toBeGreaterThan(1e-3);
  });

  it('trains Delta-LoRA and LoRA-FA with their own optimizers', async () => {
    const train = (method: string, ...config: string[]) =>
      peft(
        ...['train', '--model', model, '--method', method, '--data', data, '--out', join(tmp, method)],
        ...['--tokenizer', 'byte', '--steps', '4', '--batch-size', '2', '--seq-len', '16', '--lr', '1e-2'],
        ...['--backend', 'cpu', '--set', 'target_modules=["c_attn"]', ...config],
      );
    const [delta, fa] = (
      await Promise.all([
        train('delta-lora', '--set', 'r=2', '--set', 'update_start_steps=1'),
        train('lora-fa', '--set', 'r=4'),
      ])
    ).map(ok);

    // Delta-LoRA's optimizer moves the base weights: the native folder holds their change.
    expect(delta!.stdout).toMatch(/trained delta-lora for 4 steps/);
    const deltaConfig = JSON.parse(readFileSync(join(tmp, 'delta-lora', 'adapter_config.json'), 'utf8'));
    expect(deltaConfig).toMatchObject({ peft_type: 'DELTA_LORA', r: 2, update_start_steps: 1 });
    const { tensors } = await readSafetensorsFile(join(tmp, 'delta-lora', 'adapter_model.safetensors'));
    const deltas = [...tensors].filter(([name]) => name.endsWith('.lora_weight_delta'));
    expect(deltas).toHaveLength(2);
    expect(deltas.every(([, t]) => t.data.some((v) => v !== 0))).toBe(true);

    // LoRA-FA trains B only (2 layers x 96 x 4) and saves a plain LoRA folder.
    expect(fa!.stdout).toMatch(/^trainable params: 768 \|\| /);
    expect(fa!.stdout).toMatch(/trained lora-fa for 4 steps/);
    const faConfig = JSON.parse(readFileSync(join(tmp, 'lora-fa', 'adapter_config.json'), 'utf8'));
    expect(faConfig).toMatchObject({ peft_type: 'LORA', r: 4 });
  });

  it('--threads 2 trains the same adapter as one thread (a worker thread computes half of each batch)', async () => {
    // Without dropout: with it, each shard draws its own masks (as PyTorch's DDP does).
    const still = join(tmp, 'model-no-dropout');
    await saveTinyGpt2(still, { resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 });
    const train = (threads: string) =>
      peft(
        ...[
          'train',
          '--model',
          still,
          '--method',
          'lora',
          '--data',
          data,
          '--out',
          join(tmp, `threads-${threads}`),
        ],
        ...['--tokenizer', 'byte', '--steps', '5', '--batch-size', '4', '--seq-len', '16', '--lr', '1e-2'],
        ...['--backend', 'cpu', '--set', 'r=4', '--threads', threads],
      );
    const one = ok(await train('1'));
    const two = ok(await train('2'));
    expect(one.stdout).toMatch(/trained lora for 5 steps on \d+ blocks of 16 tokens, 1 thread, loss /);
    expect(two.stdout).toMatch(/trained lora for 5 steps on \d+ blocks of 16 tokens, 2 threads, loss /);
    const loss = (result: CliResult) => result.stdout.match(/loss ([\d.]+) -> ([\d.]+); wrote /)!.slice(1);
    expect(loss(two)).toEqual(loss(one));
    const [a, b] = await Promise.all(
      ['1', '2'].map((t) => readSafetensorsFile(join(tmp, `threads-${t}`, 'adapter_model.safetensors'))),
    );
    expect([...b!.tensors.keys()].sort()).toEqual([...a!.tensors.keys()].sort());
    for (const [name, tensor] of b!.tensors) {
      const want = Array.from(a!.tensors.get(name)!.data as Float32Array);
      const got = Array.from(tensor.data as Float32Array);
      const worst = got.reduce((w, x, i) => Math.max(w, Math.abs(x - want[i]!)), 0);
      expect(worst, name).toBeLessThan(1e-5);
    }
  });

  it('bad training input is one line on stderr', async () => {
    const common = ['--model', model, '--data', data, '--tokenizer', 'byte'];
    const results = await Promise.all([
      peft('train', ...common, '--method', 'nope', '--out', join(tmp, 'a')),
      peft('train', ...common, '--method', 'lora', '--out', join(tmp, 'b'), '--set', 'r=-1'),
      peft('train', ...common, '--method', 'lora', '--out', join(tmp, 'c'), '--seq-len', '100000'),
      peft(
        'train',
        ...common,
        '--method',
        'lora',
        '--out',
        join(tmp, 'd'),
        '--data',
        tiny,
        '--seq-len',
        '16',
      ),
    ]);
    const messages = [
      /unknown PEFT method "nope"; registered: .*lora/,
      /field "r" must be a positive integer \(got -1\)/,
      /--seq-len 100000 is longer than the model's 64 positions/,
      /the data has 2 tokens, fewer than one block of --seq-len 16/,
    ];
    for (const [i, result] of results.entries()) {
      expect(result.code).toBe(1);
      const lines = result.stderr.split('\n').filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^peft: /);
      expect(lines[0]).not.toMatch(/internal error/);
      expect(lines[0]).toMatch(messages[i]!);
    }
  });
});
