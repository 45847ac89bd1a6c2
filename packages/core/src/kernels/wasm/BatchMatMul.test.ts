import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerTrainingKernels } from '../register_kernels.js';
import { maxRelDiff, runReplacedKernel } from './replaced_kernel.test-support.js';
import { setWasmMatmulEngine, type WasmMatmulEngine } from './simd/simd_backend.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerTrainingKernels();
});

/** Plain-loop reference with full batch broadcasting (float64 accumulation). */
function referenceMatMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  const ta = transposeA ? tf.transpose(a, [...Array(a.rank - 2).keys(), a.rank - 1, a.rank - 2]) : a;
  const tb = transposeB ? tf.transpose(b, [...Array(b.rank - 2).keys(), b.rank - 1, b.rank - 2]) : b;
  const [m, k] = ta.shape.slice(-2) as [number, number];
  const n = tb.shape[tb.rank - 1]!;
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(ta.shape.slice(0, -2), tb.shape.slice(0, -2));
  const av = ta.arraySync() as unknown;
  const bv = tb.arraySync() as unknown;
  const at = (v: unknown, idx: number[], dims: number[]): number[][] => {
    let cur = v;
    const offset = idx.length - dims.length;
    dims.forEach((d, i) => {
      cur = (cur as unknown[])[d === 1 ? 0 : idx[offset + i]!];
    });
    return cur as number[][];
  };
  const out = new Float32Array(tf.util.sizeFromShape(batch) * m * n);
  const strides = tf.util.computeStrides(batch);
  for (let p = 0; p < tf.util.sizeFromShape(batch); p++) {
    const idx = batch.map((_, i) => Math.floor(p / (strides[i] ?? 1)) % batch[i]!);
    const am = at(av, idx, ta.shape.slice(0, -2));
    const bm = at(bv, idx, tb.shape.slice(0, -2));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += am[i]![q]! * bm[q]![j]!;
        out[(p * m + i) * n + j] = s;
      }
    }
  }
  return tf.tensor(out, [...batch, m, n]);
}

function operands(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean) {
  const swap = (s: number[]) => [...s.slice(0, -2), s[s.length - 1]!, s[s.length - 2]!];
  return [
    tf.randomNormal(transposeA ? swap(aShape) : aShape, 0, 1, 'float32', 1),
    tf.randomNormal(transposeB ? swap(bShape) : bShape, 0, 1, 'float32', 2),
  ] as const;
}

const flags = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

describe.each<WasmMatmulEngine>(['simd', 'xnnpack'])('BatchMatMul on wasm (%s engine)', (engine) => {
  beforeAll(() => setWasmMatmulEngine(engine));
  afterAll(() => setWasmMatmulEngine('simd'));

  // [a shape, b shape] before transposition; all batch layouts the original kernel supports.
  const sameAsOriginal: [number[], number[]][] = [
    [
      [5, 7],
      [7, 3],
    ],
    [
      [1, 1],
      [1, 1],
    ],
    [
      [33, 65],
      [65, 17],
    ],
    [
      [3, 9, 4],
      [3, 4, 11],
    ],
    [
      [4, 5, 6],
      [1, 6, 2],
    ],
    [
      [1, 5, 6],
      [4, 6, 2],
    ],
    [
      [2, 3, 8, 16],
      [2, 3, 16, 8],
    ],
    [
      [6, 1, 7],
      [6, 7, 1],
    ],
    [
      [3, 5, 7],
      [7, 3],
    ],
    [
      [5, 7],
      [3, 7, 3],
    ],
  ];
  for (const [aShape, bShape] of sameAsOriginal) {
    for (const [transposeA, transposeB] of flags) {
      it(`matches the replaced kernel: [${aShape}] @ [${bShape}], transposeA=${transposeA}, transposeB=${transposeB}`, () => {
        const [a, b] = operands(aShape, bShape, transposeA, transposeB);
        const got = tf.matMul(a, b, transposeA, transposeB);
        const want = runReplacedKernel('BatchMatMul', { a, b }, { transposeA, transposeB }) as tf.Tensor;
        expect(got.shape).toEqual(want.shape);
        expect(maxRelDiff(got, want)).toBeLessThan(1e-5);
        expect(maxRelDiff(got, referenceMatMul(a, b, transposeA, transposeB))).toBeLessThan(1e-5);
      });
    }
  }

  // Broadcasting across several batch dims, which the replaced kernel gets wrong (it indexes the
  // flattened batch modulo each operand's batch size): checked against the loop reference.
  const broadcasting: [number[], number[]][] = [
    [
      [2, 3, 5, 7],
      [2, 1, 7, 3],
    ],
    [
      [2, 1, 5, 7],
      [1, 3, 7, 3],
    ],
    [
      [3, 1, 2, 4, 5],
      [2, 1, 5, 6],
    ],
  ];
  for (const [aShape, bShape] of broadcasting) {
    for (const [transposeA, transposeB] of flags) {
      it(`broadcasts batch dims: [${aShape}] @ [${bShape}], transposeA=${transposeA}, transposeB=${transposeB}`, () => {
        const [a, b] = operands(aShape, bShape, transposeA, transposeB);
        const got = tf.matMul(a, b, transposeA, transposeB);
        expect(maxRelDiff(got, referenceMatMul(a, b, transposeA, transposeB))).toBeLessThan(1e-5);
      });
    }
  }

  // The SIMD GEMM's blocking (k in passes of 256, rows in blocks of 64), edge tiles (rows not a
  // multiple of 4, columns not a multiple of 8) and GEMV rows, against the loop reference.
  const blocking: [number, number, number][] = [
    [1, 1, 1],
    [3, 600, 9],
    [67, 257, 17],
    [130, 513, 77],
    [8, 1024, 24],
    [200, 8, 40],
    [5, 3, 1],
    // Up to 4 rows: one GEMV per row, no packing (columns in blocks of 32, 4, then 1; k tails).
    [2, 37, 77],
    [4, 384, 1152],
    [1, 6, 3],
  ];
  for (const [m, k, n] of blocking) {
    for (const [transposeA, transposeB] of flags) {
      it(`blocks and edges: [${m}x${k}] @ [${k}x${n}], transposeA=${transposeA}, transposeB=${transposeB}`, () => {
        const [a, b] = operands([m, k], [k, n], transposeA, transposeB);
        const got = tf.matMul(a, b, transposeA, transposeB);
        // float32 sums of k products (either engine) against a float64 reference: ~k·eps worst case.
        expect(maxRelDiff(got, referenceMatMul(a, b, transposeA, transposeB))).toBeLessThan(1e-5 + k * 1e-7);
      });
    }
  }

  it('computes attention-sized batches like the replaced kernel', () => {
    const q = tf.randomNormal([2, 3, 128, 64], 0, 1, 'float32', 3);
    const k = tf.randomNormal([2, 3, 128, 64], 0, 1, 'float32', 4);
    const scores = tf.matMul(q, k, false, true);
    const want = runReplacedKernel('BatchMatMul', { a: q, b: k }, { transposeA: false, transposeB: true });
    expect(maxRelDiff(scores, want as tf.Tensor)).toBeLessThan(1e-5);
  });

  it('handles empty operands and keeps the original errors', () => {
    expect(tf.matMul(tf.zeros([2, 0, 3]), tf.zeros([2, 3, 4])).shape).toEqual([2, 0, 4]);
    expect(() => tf.matMul(tf.zeros([2, 3]), tf.zeros([4, 5]))).toThrow(/inner shapes/);
    expect(() => tf.matMul(tf.zeros([2, 3, 4]), tf.zeros([3, 4, 5]))).toThrow();
  });

  it('frees every temporary', () => {
    const [a, b] = operands([4, 8, 16], [4, 16, 8], true, true);
    const dataIds = tf.backend().numDataIds();
    tf.tidy(() => {
      tf.matMul(a, b, true, true);
      tf.matMul(a, tf.zeros([1, 8, 16]), true, true);
      tf.matMul(tf.zeros([2, 3, 8, 4]), tf.zeros([1, 3, 4, 5]));
    });
    expect(tf.backend().numDataIds()).toBe(dataIds);
  });
});
