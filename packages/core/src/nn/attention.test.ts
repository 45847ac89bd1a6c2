import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { prependKVPrefix, scaledDotProductAttention } from './attention.js';
import { manualSeed } from './random.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Attention computed one query at a time with plain loops: the reference. */
function naiveAttention(
  q: number[][][][],
  k: number[][][][],
  v: number[][][][],
  causal: boolean,
  keyMask?: number[][],
): number[][][][] {
  const heads = q[0]!.length;
  const kvHeads = k[0]!.length;
  const group = heads / kvHeads;
  return q.map((qb, b) =>
    qb.map((qh, h) => {
      const kh = k[b]![Math.floor(h / group)]!;
      const vh = v[b]![Math.floor(h / group)]!;
      const offset = kh.length - qh.length;
      return qh.map((qi, i) => {
        const scores = kh.map((kj, j) => {
          if ((causal && j > i + offset) || (keyMask && keyMask[b]![j] === 0))
            return Number.NEGATIVE_INFINITY;
          return qi.reduce((s, x, d) => s + x * kj[d]!, 0) / Math.sqrt(qi.length);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b2) => a + b2, 0);
        return qi.map((_, d) => exps.reduce((s, e, j) => s + (e / total) * vh[j]![d]!, 0));
      });
    }),
  );
}

function maxDiff(a: number[][][][], b: number[][][][]): number {
  return Math.max(...a.flat(3).map((x, i) => Math.abs(x - b.flat(3)[i]!)));
}

describe('scaledDotProductAttention', () => {
  const cases = [
    { name: 'multi-head causal', heads: 4, kvHeads: 4, tq: 5, tk: 5, causal: true },
    { name: 'grouped-query causal', heads: 6, kvHeads: 2, tq: 4, tk: 4, causal: true },
    { name: 'keys from a prefix/cache (Tk > Tq)', heads: 4, kvHeads: 2, tq: 3, tk: 7, causal: true },
    { name: 'bidirectional', heads: 2, kvHeads: 1, tq: 3, tk: 3, causal: false },
  ];
  for (const c of cases) {
    it(`matches the loop reference: ${c.name}`, () => {
      const q = tf.randomNormal([2, c.heads, c.tq, 4], 0, 1, 'float32', 1);
      const k = tf.randomNormal([2, c.kvHeads, c.tk, 4], 0, 1, 'float32', 2);
      const v = tf.randomNormal([2, c.kvHeads, c.tk, 4], 0, 1, 'float32', 3);
      const got = scaledDotProductAttention(q, k, v, { causal: c.causal }).arraySync() as number[][][][];
      const want = naiveAttention(
        q.arraySync() as number[][][][],
        k.arraySync() as number[][][][],
        v.arraySync() as number[][][][],
        c.causal,
      );
      expect(maxDiff(got, want)).toBeLessThan(1e-5);
    });
  }

  it('masks padded keys', () => {
    const q = tf.randomNormal([2, 2, 4, 3], 0, 1, 'float32', 4);
    const k = tf.randomNormal([2, 2, 4, 3], 0, 1, 'float32', 5);
    const v = tf.randomNormal([2, 2, 4, 3], 0, 1, 'float32', 6);
    const mask = [
      [0, 1, 1, 1],
      [1, 1, 1, 1],
    ];
    const got = scaledDotProductAttention(q, k, v, { keyMask: tf.tensor2d(mask, [2, 4], 'int32') });
    const want = naiveAttention(
      q.arraySync() as number[][][][],
      k.arraySync() as number[][][][],
      v.arraySync() as number[][][][],
      true,
      mask,
    );
    // row 0 of batch 0 sees only a masked key: skip it (undefined in the reference, as in transformers)
    const g = got.arraySync() as number[][][][];
    for (const rows of [g, want]) for (const h of rows[0]!) h[0] = [0, 0, 0];
    expect(maxDiff(g, want)).toBeLessThan(1e-5);
    expect(() => scaledDotProductAttention(q, k, v, { keyMask: tf.ones([2, 3]) })).toThrow(/keyMask shape/);
  });

  it('places a key/value prefix before the keys', () => {
    const prefix = { key: tf.ones([1, 2, 3, 4]), value: tf.zeros([1, 2, 3, 4]) };
    const k = tf.fill([1, 2, 5, 4], 2);
    const { key, value } = prependKVPrefix(k, k, prefix);
    expect(key.shape).toEqual([1, 2, 8, 4]);
    const flat = key.arraySync() as number[][][][];
    expect(flat[0]![1]!.map((row) => row[0])).toEqual([1, 1, 1, 2, 2, 2, 2, 2]);
    expect((value.arraySync() as number[][][][])[0]![0]!.map((row) => row[0])).toEqual([
      0, 0, 0, 2, 2, 2, 2, 2,
    ]);
  });

  it('drops attention probabilities when asked, reproducibly', () => {
    const q = tf.randomNormal([1, 2, 6, 4], 0, 1, 'float32', 1);
    const k = tf.randomNormal([1, 2, 6, 4], 0, 1, 'float32', 2);
    const v = tf.ones([1, 2, 6, 4]);
    const plain = scaledDotProductAttention(q, k, v, { dropout: 0 });
    // with v all ones, each output is the sum of the kept probabilities scaled by 1/(1-p)
    expect(
      maxDiff(plain.arraySync() as number[][][][], tf.ones([1, 2, 6, 4]).arraySync() as number[][][][]),
    ).toBeLessThan(1e-6);
    manualSeed(5);
    const a = scaledDotProductAttention(q, k, v, { dropout: 0.5 });
    manualSeed(5);
    const b = scaledDotProductAttention(q, k, v, { dropout: 0.5 });
    expect(a.dataSync()).toEqual(b.dataSync());
    expect(maxDiff(a.arraySync() as number[][][][], plain.arraySync() as number[][][][])).toBeGreaterThan(
      0.1,
    );
  });

  it('rejects incompatible shapes', () => {
    expect(() =>
      scaledDotProductAttention(tf.zeros([1, 3, 2, 4]), tf.zeros([1, 2, 2, 4]), tf.zeros([1, 2, 2, 4])),
    ).toThrow(/incompatible shapes/);
  });
});
