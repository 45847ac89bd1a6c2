import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsFile } from '@peft/core/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InspectReport } from './commands/inspect.js';
import { type LogitsJson, MODEL_FIXTURES, maxAbsDiff, peft, REPO_ROOT } from './test/run_cli.js';

const LORA_FIXTURES = `${REPO_ROOT}packages/lora/fixtures`;

/** A PEFT adapter fixture: the adapter, its base model, inputs and PEFT's logits with the adapter. */
interface AdapterExpected {
  base: string;
  input_ids: number[][];
  adapters: { default: { logits: number[][][] } };
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'peft-cli-merge-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function logitsJson(result: { code: number | null; stdout: string; stderr: string }): LogitsJson {
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as LogitsJson;
}

describe('peft merge and --adapter', () => {
  it.each([
    'lora/fixtures/peft-gpt2',
    'lora/fixtures/peft-llama-all-linear-rslora',
    'vera/fixtures/peft-gpt2',
  ])("%s: --adapter gives PEFT's logits, and the merged folder gives the same", async (fixture) => {
    const adapter = `${REPO_ROOT}packages/${fixture}`;
    const name = fixture.replaceAll('/', '-');
    const expected = JSON.parse(readFileSync(`${adapter}/expected.json`, 'utf8')) as AdapterExpected;
    const base = `${MODEL_FIXTURES}/${expected.base}`;
    const ids = expected.input_ids.map((row) => row.join(',')).join(';');
    const out = join(tmp, name);
    const common = ['--ids', ids, '--backend', 'cpu'];
    const [withAdapter, merge] = await Promise.all([
      peft('logits', '--model', base, '--adapter', adapter, ...common),
      peft('merge', '--model', base, '--adapter', adapter, '--out', out, '--backend', 'cpu'),
    ]);
    expect(merge.stderr).toBe('');
    expect(merge.code).toBe(0);
    expect(merge.stdout).toContain(`wrote ${out}`);
    const merged = await peft('logits', '--model', out, ...common);

    const adapted = logitsJson(withAdapter);
    const rows = expected.input_ids.map((row, r) => ({
      row: r,
      length: row.length,
      reference: expected.adapters.default.logits[r]!,
      offset: 0,
    }));
    expect(maxAbsDiff(adapted, rows)).toBeLessThanOrEqual(1e-4);
    const mergedJson = logitsJson(merged);
    expect(mergedJson.shape).toEqual(adapted.shape);
    const worst = Math.max(...mergedJson.data.map((v, i) => Math.abs(v - adapted.data[i]!)));
    expect(worst).toBeLessThanOrEqual(1e-4);

    // A plain model folder: the base's config and tensor names, no adapter tensors.
    const names = async (dir: string) =>
      [...(await readSafetensorsFile(`${dir}/model.safetensors`)).tensors.keys()].sort();
    expect(await names(out)).toEqual(await names(base));
    expect(JSON.parse(readFileSync(`${out}/config.json`, 'utf8'))).toEqual(
      JSON.parse(readFileSync(`${base}/config.json`, 'utf8')),
    );
  });

  it("prefix tuning: --adapter gives PEFT's logits and greedy tokens; merge is refused in one line", async () => {
    const adapter = `${REPO_ROOT}packages/prefix/fixtures/peft-gpt2`;
    const expected = JSON.parse(readFileSync(`${adapter}/expected.json`, 'utf8')) as {
      base: string;
      plain: { input_ids: number[][]; logits: number[][][] };
      generation: { prompts: number[][]; tokens: number[][] };
    };
    const base = `${MODEL_FIXTURES}/${expected.base}`;
    const ids = expected.plain.input_ids.map((row) => row.join(',')).join(';');
    const prompt = expected.generation.prompts[0]!;
    const tokens = expected.generation.tokens[0]!;
    const [logits, generated, merge] = await Promise.all([
      peft('logits', '--model', base, '--adapter', adapter, '--ids', ids, '--backend', 'cpu'),
      peft(
        ...['generate', '--model', base, '--adapter', adapter, '--ids', prompt.join(',')],
        ...['--max-new-tokens', String(tokens.length), '--backend', 'cpu'],
      ),
      peft('merge', '--model', base, '--adapter', adapter, '--out', join(tmp, 'prefix-merged')),
    ]);
    const rows = expected.plain.input_ids.map((row, r) => ({
      row: r,
      length: row.length,
      reference: expected.plain.logits[r]!,
      offset: 0,
    }));
    expect(maxAbsDiff(logitsJson(logits), rows)).toBeLessThanOrEqual(1e-4);
    expect(generated.stdout).toBe(`${tokens.join(',')}\n`);
    expect(merge.code).toBe(1);
    expect(merge.stderr).toMatch(/^peft: .*"prefix" adapters cannot be merged into the weights.*\n$/);
    expect(merge.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('Delta-LoRA: the native folder, its LoRA export and the merged folder give the trained logits', async () => {
    const fixtures = `${REPO_ROOT}packages/delta-lora/fixtures/gpt2`;
    const expected = JSON.parse(readFileSync(`${fixtures}/expected.json`, 'utf8')) as {
      base: string;
      input_ids: number[][];
      logits: number[][][];
    };
    const base = `${MODEL_FIXTURES}/${expected.base}`;
    const ids = ['--ids', expected.input_ids.map((row) => row.join(',')).join(';'), '--backend', 'cpu'];
    const out = join(tmp, 'delta-lora-merged');
    const [native, lora, merge] = await Promise.all([
      peft('logits', '--model', base, '--adapter', `${fixtures}/native`, ...ids),
      peft('logits', '--model', base, '--adapter', `${fixtures}/lora`, ...ids),
      peft('merge', '--model', base, '--adapter', `${fixtures}/native`, '--out', out, '--backend', 'cpu'),
    ]);
    expect(merge.code).toBe(0);
    const merged = await peft('logits', '--model', out, ...ids);
    const rows = expected.input_ids.map((row, r) => ({
      row: r,
      length: row.length,
      reference: expected.logits[r]!,
      offset: 0,
    }));
    for (const result of [native, lora, merged])
      expect(maxAbsDiff(logitsJson(result), rows)).toBeLessThanOrEqual(1e-4);
  });

  it('inspect reads an adapter folder and names its technique', async () => {
    const adapter = `${LORA_FIXTURES}/peft-gpt2`;
    const result = await peft('inspect', adapter, '--json');
    const report = JSON.parse(result.stdout) as InspectReport;
    const expected = JSON.parse(readFileSync(`${adapter}/expected.json`, 'utf8'));
    expect(report.kind).toBe('adapter');
    expect(report.peft_type).toBe('LORA');
    expect(report.method).toBe('lora');
    expect(report.config).toEqual(JSON.parse(readFileSync(`${adapter}/adapter_config.json`, 'utf8')));
    expect(report.parameters).toBe(expected.trainable_parameters.trainable);
    expect(report.files[0]!.tensors.every((t) => /\.lora_[AB]\.weight$/.test(t.name))).toBe(true);
  });

  it('an adapter that does not fit the model is one line on stderr', async () => {
    const result = await peft(
      ...['logits', '--model', `${MODEL_FIXTURES}/gpt2-wide`, '--adapter', `${LORA_FIXTURES}/peft-gpt2`],
      ...['--ids', '1,2', '--backend', 'cpu'],
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^peft: .*peft-gpt2: cannot load the LORA adapter: .*does not match the model's/,
    );
  });
});
