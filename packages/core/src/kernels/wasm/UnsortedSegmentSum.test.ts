import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerTrainingKernels } from '../register_kernels.js';
import { maxRelDiff } from './replaced_kernel.test-support.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerTrainingKernels();
});

/** Plain-loop reference: out[s] = sum of rows i with ids[i] = s, ids out of range dropped. */
function referenceSegmentSum(x: tf.Tensor, ids: tf.Tensor, numSegments: number): tf.Tensor {
  const rowShape = x.shape.slice(ids.rank);
  const rowSize = tf.util.sizeFromShape(rowShape);
  const xs = x.dataSync();
  const is = ids.dataSync();
  const out = new Float64Array(numSegments * rowSize);
  is.forEach((s, i) => {
    if (s < 0 || s >= numSegments) return;
    for (let j = 0; j < rowSize; j++) out[s * rowSize + j]! += xs[i * rowSize + j]!;
  });
  return tf.tensor(Float32Array.from(out), [numSegments, ...rowShape], x.dtype);
}

describe('UnsortedSegmentSum on wasm', () => {
  it('sums rows into segments like a loop and a one-hot matmul', () => {
    const x = tf.randomNormal([1024, 384], 0, 1, 'float32', 5);
    const ids = tf.randomUniform([1024], 0, 256, 'int32', 6);
    const got = tf.unsortedSegmentSum(x, ids as tf.Tensor1D, 256);
    expect(got.shape).toEqual([256, 384]);
    expect(maxRelDiff(got, referenceSegmentSum(x, ids, 256))).toBeLessThan(1e-5);
    const oneHot = tf.matMul(tf.oneHot(ids, 256), x, true, false);
    expect(maxRelDiff(got, oneHot)).toBeLessThan(1e-5);
  });

  it('handles N-D ids and rows, int32, unused and out-of-range segments', () => {
    const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 3, 2], 'int32');
    const ids = tf.tensor2d([2, 0, 2, -1, 5, 0], [2, 3], 'int32');
    const got = tf.unsortedSegmentSum(x, ids as unknown as tf.Tensor1D, 4);
    expect(got.dtype).toBe('int32');
    expect(got.arraySync()).toEqual([
      [3 + 11, 4 + 12],
      [0, 0],
      [1 + 5, 2 + 6],
      [0, 0],
    ]);
    const vector = tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([1, 1, 0, 1], 'int32'), 3);
    expect(Array.from(vector.dataSync())).toEqual([3, 7, 0]);
  });

  it('is the gradient of gather (embedding lookup)', async () => {
    // tfjs-core's Node bundle registers no gradients; vite resolves this module for the test.
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    const table = tf.randomNormal([50, 8], 0, 1, 'float32', 7);
    const ids = tf.tensor2d([3, 3, 49, 0, 7, 3], [2, 3], 'int32');
    const upstream = tf.randomNormal([2, 3, 8], 0, 1, 'float32', 8);
    const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), upstream)))(table);
    const want = referenceSegmentSum(tf.reshape(upstream, [6, 8]), tf.reshape(ids, [6]), 50);
    expect(maxRelDiff(grad, want)).toBeLessThan(1e-6);
  });
});
