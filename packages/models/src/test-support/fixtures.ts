import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

export const FIXTURES_DIR = fileURLToPath(new URL('../../fixtures/', import.meta.url));

export const MODEL_FIXTURES = [
  'gpt2-tiny',
  'gpt2-wide',
  'llama-gqa-untied',
  'llama-tied-mqa',
  'qwen2-tiny',
  'llama3-rope-sharded',
] as const;

export interface LogitsCase {
  name: string;
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][] | null;
  logits: number[][][];
}

export interface ModelExpectation {
  model_type: string;
  cases: LogitsCase[];
  /** transformers' loss for `model(input_ids, labels=labels)` (-100: not counted). */
  loss: { input_ids: number[][]; labels: number[][]; loss: number };
  generation: { prompt: number[]; max_new_tokens: number; greedy: number[] };
}

export function fixtureDir(name: string): string {
  return `${FIXTURES_DIR}${name}`;
}

export function readExpected<T = ModelExpectation>(name: string): T {
  return JSON.parse(readFileSync(`${fixtureDir(name)}/expected.json`, 'utf8')) as T;
}

/** Largest |actual - expected| over the positions whose mask is 1. */
export function maxAbsDiffAtMask(actual: number[][][], expected: number[][][], mask: number[][]): number {
  let worst = 0;
  for (const [b, row] of expected.entries()) {
    for (const [t, position] of row.entries()) {
      if (mask[b]![t] !== 1) continue;
      for (const [v, value] of position.entries())
        worst = Math.max(worst, Math.abs(actual[b]![t]![v]! - value));
    }
  }
  return worst;
}

export async function useCpuBackend(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}
