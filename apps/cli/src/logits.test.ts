import { describe, expect, it } from 'vitest';
import {
  type CliResult,
  type LogitsJson,
  MAIN,
  MODEL_FIXTURES,
  maxAbsDiff,
  peft,
  readExpected,
  run,
} from './test/run_cli.js';

// One of each family, and a sharded checkpoint (the models package checks every fixture in-process).
const FIXTURES = ['gpt2-tiny', 'llama-gqa-untied', 'llama3-rope-sharded'] as const;

/** The real tokens of each row (where the attention mask is 1) and where they start. */
function realTokens(ids: number[][], mask: number[][]): { rows: number[][]; starts: number[] } {
  return {
    rows: ids.map((row, b) => row.filter((_, t) => mask[b]![t] === 1)),
    starts: mask.map((row) => row.indexOf(1)),
  };
}

/** stdout must be one JSON object and nothing else. */
function parseOnlyJson(result: CliResult): LogitsJson {
  expect(result.stderr).not.toMatch(/^peft:/m);
  expect(result.code).toBe(0);
  expect(result.stdout.startsWith('{"shape":[')).toBe(true);
  expect(result.stdout.endsWith('}\n')).toBe(true);
  return JSON.parse(result.stdout) as LogitsJson;
}

describe('peft logits', () => {
  it.each(FIXTURES)('%s: equals the transformers logits within 1e-4', async (name) => {
    const expected = readExpected(name);
    const right = expected.cases.find((c) => c.name === 'right_padded')!;
    const left = expected.cases.find((c) => c.name === 'left_padded_positions')!;
    // Both cases' rows in one batch: transformers ran them right-padded, and left-padded with explicit
    // positions; a row's real tokens give the same logits however the batch is padded.
    const a = realTokens(right.input_ids, right.attention_mask);
    const b = realTokens(left.input_ids, left.attention_mask);
    const rows = [...a.rows, ...b.rows];
    const ids = rows.map((row) => row.join(',')).join(';');
    const json = parseOnlyJson(await peft('logits', '--model', `${MODEL_FIXTURES}/${name}`, '--ids', ids));

    const width = Math.max(...rows.map((row) => row.length));
    expect(json.shape).toEqual([rows.length, width, right.logits[0]![0]!.length]);
    expect(json.data).toHaveLength(json.shape.reduce((x, y) => x * y, 1));
    // Unequal rows are right-padded, as a transformers tokenizer pads, and the mask is reported.
    expect(json.attention_mask).toEqual(
      rows.map((row) => Array.from({ length: width }, (_, t) => (t < row.length ? 1 : 0))),
    );
    const references = [
      ...right.logits.map((reference, r) => ({ reference, offset: a.starts[r]! })),
      ...left.logits.map((reference, r) => ({ reference, offset: b.starts[r]! })),
    ];
    const checked = references.map((r, row) => ({ ...r, row, length: rows[row]!.length }));
    expect(maxAbsDiff(json, checked)).toBeLessThanOrEqual(1e-4);
  });

  it('runs on --backend webgpu (skipped where no Vulkan driver is installed)', async (context) => {
    const expected = readExpected('gpt2-tiny').cases.find((c) => c.name === 'right_padded')!;
    const { rows } = realTokens(expected.input_ids, expected.attention_mask);
    const ids = rows.map((row) => row.join(',')).join(';');
    const result = await peft(
      'logits',
      '--model',
      `${MODEL_FIXTURES}/gpt2-tiny`,
      '--ids',
      ids,
      '--backend',
      'webgpu',
    );
    if (/backend 'webgpu' was requested but cannot be used/.test(result.stderr)) {
      context.skip(result.stderr.trim());
    }
    const json = parseOnlyJson(result);
    const checked = expected.logits.map((reference, row) => ({
      reference,
      offset: 0,
      row,
      length: rows[row]!.length,
    }));
    expect(maxAbsDiff(json, checked)).toBeLessThanOrEqual(1e-4);
  });

  it('prints only {"shape","data"} for rows of equal length, and streams large outputs whole', async () => {
    // 24 x 30 x 96 values: more than one write of the streamed JSON.
    const ids = Array.from({ length: 24 }, (_, b) =>
      Array.from({ length: 30 }, (_, t) => (b * 7 + t * 3) % 96).join(','),
    ).join(';');
    const result = await peft('logits', '--model', `${MODEL_FIXTURES}/gpt2-tiny`, '--ids', ids);
    const json = parseOnlyJson(result);
    expect(Object.keys(json)).toEqual(['shape', 'data']);
    expect(json.shape).toEqual([24, 30, 96]);
    expect(json.data).toHaveLength(24 * 30 * 96);
    expect(json.data.every((v) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
  });

  it('works as `pnpm --silent peft` and `pnpm -s run peft`: stdout holds only the JSON', async () => {
    // Under `pnpm test` npm_execpath is pnpm itself (a native binary in pnpm 12, a script before);
    // otherwise the pinned pnpm through npx.
    const execPath = process.env.npm_execpath ?? '';
    const script = /\.[cm]?js$/.test(execPath);
    const pnpm = /pnpm/.test(execPath)
      ? script
        ? { command: process.execPath, args: [execPath] }
        : { command: execPath, args: [] }
      : { command: 'npx', args: ['-y', 'pnpm@12.4.2'] };
    const logitsArgs = ['logits', '--model', `${MODEL_FIXTURES}/gpt2-tiny`, '--ids', '1,2,3;4,5'];
    const [silent, silentRun] = await Promise.all([
      run(pnpm.command, [...pnpm.args, '--silent', 'peft', ...logitsArgs]),
      run(pnpm.command, [...pnpm.args, '-s', 'run', 'peft', ...logitsArgs]),
    ]);
    for (const result of [silent, silentRun]) {
      const json = parseOnlyJson(result);
      expect(json.shape).toEqual([2, 3, 96]);
      expect(json.attention_mask).toEqual([
        [1, 1, 1],
        [1, 1, 0],
      ]);
    }
    expect(silent.stdout).toBe(silentRun.stdout);
    expect(MAIN.endsWith('apps/cli/src/main.ts')).toBe(true); // the root script runs this file
  });
});
