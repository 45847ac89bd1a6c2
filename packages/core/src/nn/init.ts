import * as tf from '@tensorflow/tfjs-core';
import { nextSeed } from './random.js';

/**
 * PyTorch's `kaiming_uniform_(w, a)` for a weight whose fan-in is `fanIn`:
 * U(-b, b) with b = gain * sqrt(3 / fanIn), gain = sqrt(2 / (1 + a^2)).
 * `a = sqrt(5)` (nn.Linear's default, and LoRA's A) gives b = 1/sqrt(fanIn).
 */
export function kaimingUniform(shape: number[], fanIn: number, a = Math.sqrt(5)): tf.Tensor {
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fanIn);
  return tf.randomUniform(shape, -bound, bound, 'float32', nextSeed());
}

/** Uniform on (-bound, bound), seeded from the process-wide generator. */
export function uniform(shape: number[], bound: number): tf.Tensor {
  return tf.randomUniform(shape, -bound, bound, 'float32', nextSeed());
}

/** Normal(mean, std), seeded from the process-wide generator. */
export function normal(shape: number[], std = 1, mean = 0): tf.Tensor {
  return tf.randomNormal(shape, mean, std, 'float32', nextSeed());
}
