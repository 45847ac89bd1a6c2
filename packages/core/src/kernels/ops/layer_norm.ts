import * as tf from '@tensorflow/tfjs-core';
import { fusedKernelsActive, PEFT_LAYER_NORM } from '../wasm/Fused.js';

/**
 * Layer normalisation over the last axis: `(x - mean) / sqrt(var + eps) · gamma + beta` (biased
 * variance, as `nn.LayerNorm`), `gamma` and `beta` of shape `[d]`. Any backend; on wasm with core's
 * kernels registered (and d a multiple of 4) forward and backward are one fused kernel each (the
 * composed form is ~15 tfjs kernels, with a tensor in memory between each).
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): tf.Tensor {
  const d = x.shape[x.rank - 1]!;
  if (
    x.dtype === 'float32' &&
    gamma.dtype === 'float32' &&
    beta.dtype === 'float32' &&
    d % 4 === 0 &&
    x.size > 0 &&
    fusedKernelsActive(PEFT_LAYER_NORM)
  ) {
    return tf.engine().runKernel(PEFT_LAYER_NORM, { x, gamma, beta }, { epsilon }) as tf.Tensor;
  }
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
    return tf.add(tf.mul(normed, gamma), beta);
  });
}
