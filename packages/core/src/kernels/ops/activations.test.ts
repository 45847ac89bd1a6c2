import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerTrainingKernels } from '../register_kernels.js';
import { geluNew } from './gelu_new.js';
import { silu } from './silu.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerTrainingKernels();
});

/** Hugging Face's gelu_new, in float64. */
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const siluExact = (x: number) => x / (1 + Math.exp(-x));
const centralDifference = (f: (x: number) => number, x: number, h = 1e-5) => (f(x + h) - f(x - h)) / (2 * h);

const points = [-12, -6, -3.5, -2, -1.3, -0.7, -0.1, 0, 1e-4, 0.2, 0.9, 1.7, 2.5, 4, 7, 15];

describe.each([
  ['geluNew', geluNew, geluTanh],
  ['silu', silu, siluExact],
] as const)('%s', (_, op, exact) => {
  it('matches the float64 formula', () => {
    const got = op(tf.tensor1d(points)).dataSync();
    points.forEach((x, i) => {
      expect(Math.abs(got[i]! - exact(x))).toBeLessThan(1e-6 * (1 + Math.abs(exact(x))));
    });
  });

  it('has the gradient of the formula (finite differences), times the upstream gradient', () => {
    const upstream = points.map((_, i) => 0.5 + i / 7);
    // Upstream gradient passed as dy: only the op's own gradient runs (Node tfjs registers no others).
    const grad = tf.grad((x: tf.Tensor) => op(x))(tf.tensor1d(points), tf.tensor1d(upstream));
    const got = grad.dataSync();
    points.forEach((x, i) => {
      const want = upstream[i]! * centralDifference(exact, x);
      expect(Math.abs(got[i]! - want)).toBeLessThan(2e-6 * (1 + Math.abs(want)));
    });
  });

  it('keeps shape, takes arrays and int tensors, and leaks nothing', () => {
    expect(op(tf.zeros([2, 3, 4])).shape).toEqual([2, 3, 4]);
    expect(op([1, 2]).dtype).toBe('float32');
    expect(op(tf.tensor1d([1, -2], 'int32')).dataSync()[1]).toBeCloseTo(exact(-2), 6);
    const x = tf.randomNormal([64, 32], 0, 2, 'float32', 9);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.grad((t: tf.Tensor) => op(t))(x, tf.onesLike(x));
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
