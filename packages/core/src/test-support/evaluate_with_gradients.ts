import * as tf from '@tensorflow/tfjs-core';
import { randomValues } from './seeded_random.js';
import type { WeightValues } from './transformer_block.js';

export interface OutputAndGradients {
  output: Float32Array;
  /** d loss / d input, by input name; loss = sum(output * fixed random weights). */
  gradients: Record<string, Float32Array>;
}

/**
 * Runs `f` on the current backend from plain values and returns its output and the gradients of a
 * weighted sum of it wrt every named input. Reads results with `await data()` (dataSync throws on
 * WebGPU in Node) and disposes every tensor it made.
 */
export async function evaluateWithGradients(
  f: (inputs: Record<string, tf.Tensor>) => tf.Tensor,
  inputValues: WeightValues,
  seed = 13,
): Promise<OutputAndGradients> {
  const names = Object.keys(inputValues);
  const inputs = names.map((name) => tf.tensor(inputValues[name]!.values, inputValues[name]!.shape));
  const byName = (xs: tf.Tensor[]) => Object.fromEntries(names.map((name, i) => [name, xs[i]!]));
  const output = tf.tidy(() => f(byName(inputs)));
  const lossWeights = tf.tensor(randomValues(output.size, seed), output.shape);
  const gradients = tf.tidy(() =>
    tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(byName(xs)), lossWeights)))(inputs),
  );
  try {
    const values = await Promise.all([output, ...gradients].map((t) => t.data() as Promise<Float32Array>));
    return {
      output: values[0]!,
      gradients: Object.fromEntries(names.map((name, i) => [name, values[i + 1]!])),
    };
  } finally {
    tf.dispose([...inputs, output, lossWeights, ...gradients]);
  }
}
