import * as tf from '@tensorflow/tfjs-core';
import { fusedKernelsActive, PEFT_SOFTMAX } from '../wasm/Fused.js';

/**
 * Softmax over the last axis. Any backend (`tf.softmax`); on wasm with core's kernels registered
 * (and a last axis that is a multiple of 4), the gradient is one fused pass instead of tfjs's four
 * kernels (`(dy - Σ dy·y)·y`).
 */
export function softmaxLastAxis(logits: tf.Tensor): tf.Tensor {
  const d = logits.shape[logits.rank - 1]!;
  if (logits.dtype === 'float32' && d % 4 === 0 && logits.size > 0 && fusedKernelsActive(PEFT_SOFTMAX)) {
    return tf.engine().runKernel(PEFT_SOFTMAX, { logits }) as tf.Tensor;
  }
  return tf.softmax(logits);
}
