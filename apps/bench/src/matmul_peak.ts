import * as tf from '@tensorflow/tfjs-core';

export interface MatmulPeak {
  /** `[m x k] @ [k x n]`. */
  shape: [number, number, number];
  gflops: number;
  milliseconds: number;
}

/**
 * The backend's plain-matMul rate on the bench's largest projection (`[B·T x d] @ [d x 3d]`): the
 * best of a few runs (after one untimed warm-up), fresh inputs each time as in training, so that
 * XNNPACK packs the weights on every call (as core's kernel-bench measures its peak).
 */
export async function measureMatmulPeak(m: number, k: number, n: number, runs = 6): Promise<MatmulPeak> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i <= runs; i++) {
    const a = tf.randomNormal([m, k], 0, 1, 'float32', 1 + i);
    const b = tf.randomNormal([k, n], 0, 1, 'float32', 100 + i);
    await Promise.all([a.data(), b.data()]);
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    const ms = performance.now() - t0;
    tf.dispose([a, b, c]);
    if (i > 0) best = Math.min(best, ms);
  }
  return { shape: [m, k, n], gflops: (2 * m * k * n) / (best * 1e6), milliseconds: best };
}
