import * as tf from '@tensorflow/tfjs-core';
import { timeOnce } from './run_technique.js';

export interface MatmulPeak {
  /** `[m x k] @ [k x n]`. */
  shape: [number, number, number];
  gflops: number;
  /** CPU milliseconds of the best run. */
  milliseconds: number;
  /** The rate over all the runs together (CPU time): what the matmul sustained under the load of the moment. */
  sustainedGflops: number;
}

/**
 * The backend's plain-matMul rate on the bench's largest projection (`[B·T x d] @ [d x 3d]`): the
 * best of a few runs (after one untimed warm-up), fresh inputs each time as in training, so that
 * XNNPACK packs the weights on every call (as core's kernel-bench measures its peak). Timed in CPU
 * time, like the steps, so that waiting for a core on a shared machine does not lower the peak.
 */
export async function measureMatmulPeak(m: number, k: number, n: number, runs = 8): Promise<MatmulPeak> {
  let best = Number.POSITIVE_INFINITY;
  let total = 0;
  for (let i = 0; i <= runs; i++) {
    const a = tf.randomNormal([m, k], 0, 1, 'float32', 1 + i);
    const b = tf.randomNormal([k, n], 0, 1, 'float32', 100 + i);
    await Promise.all([a.data(), b.data()]);
    const timing = await timeOnce(async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    });
    tf.dispose([a, b]);
    if (i > 0) {
      best = Math.min(best, timing.cpu);
      total += timing.cpu;
    }
  }
  const flops = 2 * m * k * n;
  return {
    shape: [m, k, n],
    gflops: flops / (best * 1e9),
    milliseconds: best * 1000,
    sustainedGflops: (flops * runs) / (total * 1e9),
  };
}

/** The better of two measurements of the same peak (the machine is shared: take the least disturbed). */
export function bestPeak(a: MatmulPeak, b: MatmulPeak): MatmulPeak {
  return a.gflops >= b.gflops ? a : b;
}

/**
 * Products of one shape on the current backend, over operands made once (the ceiling's matmul
 * work: the same products on every thread, nothing read back). `dispose` frees the operands.
 */
export class MatmulProducts {
  readonly #a: tf.Tensor2D;
  readonly #b: tf.Tensor2D;

  constructor(shape: [number, number, number]) {
    const [m, k, n] = shape;
    this.#a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
    this.#b = tf.randomNormal([k, n], 0, 1, 'float32', 2);
  }

  /** Runs `count` products; returns how many ran (what a split run's threads add up to). */
  run(count: number): number {
    for (let i = 0; i < count; i++) tf.matMul(this.#a, this.#b).dispose();
    return count;
  }

  dispose(): void {
    tf.dispose([this.#a, this.#b]);
  }
}
