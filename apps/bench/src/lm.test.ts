import { manualSeed } from '@peft/core';
import { type CausalLM, createModel } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from './backend.js';
import { encodeBytes, type LabelledRow, lmRow, sentimentRow } from './data.js';
import { maskedLMLoss, perplexity, rowLogLikelihoods } from './lm.js';
import { type TaskData, taskBatches, trimPadding } from './tasks.js';

let model: CausalLM;

beforeAll(async () => {
  await startBackend('cpu');
  manualSeed(11);
  model = createModel({
    model_type: 'gpt2',
    vocab_size: 256,
    n_positions: 32,
    n_embd: 16,
    n_layer: 1,
    n_head: 2,
  });
  model.eval();
});

const rows: LabelledRow[] = [lmRow([1, 2, 3, 4, 5, 6]), lmRow([9, 8, 7, 6, 5, 4])];

describe('causal-LM loss and scores', () => {
  it('the loss is the mean negative log-likelihood of the counted targets', () => {
    const loss = tf.tidy(() => maskedLMLoss(model, rows).dataSync()[0]!);
    const { logLikelihood, counted } = rowLogLikelihoods(model, rows);
    expect(counted).toEqual([5, 5]);
    expect(loss).toBeCloseTo(-(logLikelihood[0]! + logLikelihood[1]!) / 10, 5);
    expect(perplexity(model, rows, 1)).toBeCloseTo(Math.exp(loss), 4);
  });

  it('masked targets do not count, and padding after them changes nothing', () => {
    const row = sentimentRow(encodeBytes, 'ok', 1, 30);
    const [trimmed] = trimPadding([row]);
    expect(trimmed!.mask).toHaveLength(24); // 21 used targets, rounded up to a multiple of 8
    const full = rowLogLikelihoods(model, [row]);
    const short = rowLogLikelihoods(model, [trimmed!]);
    expect(full.counted).toEqual([encodeBytes(' positive').length]);
    expect(short.logLikelihood[0]).toBeCloseTo(full.logLikelihood[0]!, 4);
    const loss = tf.tidy(() => maskedLMLoss(model, [row]).dataSync()[0]!);
    expect(loss).toBeCloseTo(-full.logLikelihood[0]! / full.counted[0]!, 5);
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    rowLogLikelihoods(model, rows);
    perplexity(model, rows, 2);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('task batches', () => {
  const data: TaskData = {
    length: 12,
    encode: encodeBytes,
    sotuTrain: Array.from({ length: 500 }, (_, i) => i % 200),
    sotuHeldOut: [],
    mobyHeldOut: [],
    sentimentTrain: [
      { text: 'good', label: 1, source: 'yelp' },
      { text: 'bad', label: 0, source: 'yelp' },
      { text: 'fine', label: 1, source: 'imdb' },
    ],
    sentimentTest: [],
  };

  it('are the same stream for the same seed, of the bench shape', () => {
    for (const task of ['sotu', 'sentiment'] as const) {
      const a = taskBatches(data, task, 4, 1);
      const b = taskBatches(data, task, 4, 1);
      const first = a();
      expect(first).toEqual(b());
      expect(first).toHaveLength(4);
      expect(first.every((r) => r.ids.length === 13 && r.mask.length === 12)).toBe(true);
    }
  });

  it('cycle through the sentiment training sentences in order', () => {
    const next = taskBatches(data, 'sentiment', 2, 1);
    const labels = [...next(), ...next()].map((r) => r.ids.slice(0, 4));
    expect(labels[3]).toEqual(labels[0]);
  });
});
