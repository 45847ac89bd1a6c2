import { geluNew, silu } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

/** Exact GELU, x·Φ(x) (transformers' `gelu`). */
export function geluExact(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

export type Activation = (x: tf.Tensor) => tf.Tensor;

/**
 * transformers' `ACT2FN` names implemented here. `gelu_new` and `silu` are core's fused ops
 * (sigmoid forms with their own gradients, fast on wasm).
 */
export const ACTIVATIONS: Readonly<Record<string, Activation>> = {
  gelu_new: geluNew,
  gelu_pytorch_tanh: geluNew,
  gelu: geluExact,
  silu,
  swish: silu,
  relu: (x) => tf.relu(x),
};
