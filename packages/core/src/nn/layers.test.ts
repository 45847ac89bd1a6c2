import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Dropout } from './dropout.js';
import { Embedding } from './embedding.js';
import { kaimingUniform } from './init.js';
import { LayerNorm } from './layer_norm.js';
import { Linear } from './linear.js';
import { manualSeed } from './random.js';
import { RMSNorm } from './rms_norm.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const x = [
  [0.5, -1, 2],
  [3, 0.25, -0.75],
];

describe('Linear', () => {
  it('computes x·Wᵀ + b for [out,in] and x·W + b for the Conv1D layout, on any rank', () => {
    const w = [
      [1, 2, 3],
      [-1, 0.5, 0],
    ]; // [out=2, in=3]
    const b = [0.1, -0.2];
    const expected = x.map((row) => w.map((wr, o) => wr.reduce((s, v, i) => s + v * row[i]!, b[o]!)));
    const linear = new Linear({
      inFeatures: 3,
      outFeatures: 2,
      weight: tf.tensor2d(w),
      biasValue: tf.tensor1d(b),
    });
    const conv1d = new Linear({
      inFeatures: 3,
      outFeatures: 2,
      fanInFanOut: true,
      weight: tf.transpose(tf.tensor2d(w)),
      biasValue: tf.tensor1d(b),
    });
    for (const layer of [linear, conv1d]) {
      const y = layer.forward(tf.tensor3d([x]));
      expect(y.shape).toEqual([1, 2, 2]);
      const got = (y.arraySync() as number[][][])[0]!;
      got.forEach((row, r) => {
        row.forEach((v, c) => {
          expect(v).toBeCloseTo(expected[r]![c]!, 6);
        });
      });
    }
    expect(() => new Linear({ inFeatures: 3, outFeatures: 2, weight: tf.zeros([3, 2]) })).toThrow(
      /must be \[2,3\]/,
    );
  });

  it('initialises like nn.Linear: U(±1/sqrt(in))', () => {
    manualSeed(3);
    const w = kaimingUniform([64, 256], 256).dataSync();
    const bound = 1 / Math.sqrt(256);
    let max = 0;
    let sumSq = 0;
    for (const v of w) {
      max = Math.max(max, Math.abs(v));
      sumSq += v * v;
    }
    expect(max).toBeLessThanOrEqual(bound);
    expect(max).toBeGreaterThan(0.95 * bound);
    // variance of U(-b, b) is b²/3
    expect(sumSq / w.length).toBeCloseTo((bound * bound) / 3, 4);
  });
});

describe('Embedding', () => {
  it('looks up rows for int32 ids of any shape', () => {
    const table = tf.tensor2d([
      [0, 0],
      [1, 10],
      [2, 20],
    ]);
    const emb = new Embedding({ numEmbeddings: 3, embeddingDim: 2, weight: table });
    expect(
      emb
        .forward(
          tf.tensor2d(
            [
              [2, 1],
              [0, 2],
            ],
            [2, 2],
            'int32',
          ),
        )
        .arraySync(),
    ).toEqual([
      [
        [2, 20],
        [1, 10],
      ],
      [
        [0, 0],
        [2, 20],
      ],
    ]);
    expect(() => emb.forward(tf.tensor1d([1]))).toThrow(/ids must be int32/);
  });
});

describe('norms', () => {
  it('LayerNorm normalises over the last axis with biased variance (like PyTorch)', () => {
    const ln = new LayerNorm({ dim: 3 });
    ln.weight.assign(tf.tensor1d([1, 2, 3]));
    ln.bias.assign(tf.tensor1d([0, 1, -1]));
    const got = ln.forward(tf.tensor2d(x)).arraySync() as number[][];
    x.forEach((row, r) => {
      const mean = row.reduce((a, b) => a + b) / 3;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / 3;
      row.forEach((v, c) => {
        const expected = ((v - mean) / Math.sqrt(variance + 1e-5)) * [1, 2, 3][c]! + [0, 1, -1][c]!;
        expect(got[r]![c]).toBeCloseTo(expected, 5);
      });
    });
  });

  it('RMSNorm scales by the root mean square', () => {
    const norm = new RMSNorm({ dim: 3, eps: 1e-6 });
    norm.weight.assign(tf.tensor1d([1, 0.5, 2]));
    const got = norm.forward(tf.tensor2d(x)).arraySync() as number[][];
    x.forEach((row, r) => {
      const rms = Math.sqrt(row.reduce((a, b) => a + b * b, 0) / 3 + 1e-6);
      row.forEach((v, c) => {
        expect(got[r]![c]).toBeCloseTo((v / rms) * [1, 0.5, 2][c]!, 5);
      });
    });
  });
});

describe('Dropout', () => {
  it('is the identity in eval mode and seeded in training', () => {
    const drop = new Dropout(0.5);
    const ones = tf.ones([1000]);
    drop.eval();
    expect(drop.forward(ones)).toBe(ones);
    drop.train();
    manualSeed(11);
    const a = drop.forward(ones).dataSync();
    manualSeed(11);
    const b = drop.forward(ones).dataSync();
    expect(a).toEqual(b);
    const kept = [...a].filter((v) => v !== 0);
    expect(new Set(kept)).toEqual(new Set([2]));
    expect(kept.length).toBeGreaterThan(400);
    expect(kept.length).toBeLessThan(600);
    expect(() => new Dropout(1)).toThrow(/p must be in \[0, 1\)/);
  });
});
