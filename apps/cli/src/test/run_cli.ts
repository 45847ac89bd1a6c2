// Runs the `peft` command as a child process, as users and scripts run it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));
export const MODEL_FIXTURES = `${REPO_ROOT}packages/models/fixtures`;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` in the repository root and collects its output. */
export function run(command: string, args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `peft args` from the TypeScript sources (what `pnpm peft` runs). */
export function peft(...args: string[]): Promise<CliResult> {
  return run(process.execPath, ['--import', 'tsx', '--conditions=peft-source', MAIN, ...args]);
}

export interface Expected {
  model_type: string;
  cases: {
    name: string;
    input_ids: number[][];
    attention_mask: number[][];
    position_ids: number[][] | null;
    logits: number[][][];
  }[];
  generation: { prompt: number[]; max_new_tokens: number; greedy: number[] };
}

/** The transformers reference of a model fixture (packages/models/fixtures/<name>/expected.json). */
export function readExpected(name: string): Expected {
  return JSON.parse(readFileSync(`${MODEL_FIXTURES}/${name}/expected.json`, 'utf8')) as Expected;
}

/** `logits` output: the shape, the data and (rows of unequal length) the attention mask. */
export interface LogitsJson {
  shape: [number, number, number];
  data: number[];
  attention_mask?: number[][];
}

/**
 * Largest |actual - reference| over the first `length` positions of output row `row`, where
 * position t of the output is position `t + offset` of `reference` (one row: `[length, vocab]`).
 */
export function maxAbsDiff(
  actual: LogitsJson,
  rows: { row: number; length: number; reference: number[][]; offset: number }[],
): number {
  const [, width, vocab] = actual.shape;
  let worst = 0;
  for (const { row, length, reference, offset } of rows) {
    for (let t = 0; t < length; t++) {
      for (let v = 0; v < vocab; v++) {
        const value = actual.data[(row * width + t) * vocab + v]!;
        worst = Math.max(worst, Math.abs(value - reference[t + offset]![v]!));
      }
    }
  }
  return worst;
}
