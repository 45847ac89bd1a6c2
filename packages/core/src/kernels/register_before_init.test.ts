import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { registerTrainingKernels } from './register_kernels.js';

// Registering before the wasm backend initialises: the overrides carry the replaced kernels' setup
// functions, which the engine then runs at initialisation (they bind the C functions they call).
it('works when registered before setBackend', async () => {
  expect(registerTrainingKernels()).toContain('BatchMatMul');
  await tf.setBackend('wasm');
  const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
  expect(tf.matMul(a, a, true, false).arraySync()).toEqual([
    [35, 44],
    [44, 56],
  ]);
  expect(tf.tile(tf.tensor1d([1, 2]), [2]).arraySync()).toEqual([1, 2, 1, 2]);
  expect(tf.transpose(tf.reshape(tf.range(0, 32), [2, 2, 2, 2, 2]), [4, 3, 2, 1, 0]).dataSync()[1]).toBe(16);
  expect(tf.sum(tf.tensor2d([1, 2, 3, 4], [2, 2]), 0).arraySync()).toEqual([4, 6]);
});
