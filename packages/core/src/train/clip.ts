import * as tf from '@tensorflow/tfjs-core';

/**
 * The 2-norm of all gradients taken together (a scalar tensor), computed as PyTorch does: the norm
 * of the per-tensor norms.
 */
export function globalNorm(grads: Iterable<tf.Tensor>): tf.Scalar {
  return tf.tidy(() => {
    const norms = [...grads].map((grad) => tf.sqrt(tf.sum(tf.square(grad))));
    if (norms.length === 0) return tf.scalar(0);
    return tf.sqrt(tf.sum(tf.square(tf.stack(norms)))) as tf.Scalar;
  });
}

/**
 * torch.nn.utils.clip_grad_norm_: scale every gradient by min(1, maxNorm / (totalNorm + 1e-6)).
 * Stays on the device (no read-back): the factor is applied even when it is 1, as PyTorch does, which
 * leaves the values bit-identical. A non-finite norm gives non-finite gradients; callers check the
 * returned norm before using them. Returns new tensors (the inputs are not disposed) and the
 * pre-clip norm.
 */
export function clipGradNorm<K>(
  grads: ReadonlyMap<K, tf.Tensor>,
  maxNorm: number,
): { grads: Map<K, tf.Tensor>; totalNorm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive (got ${maxNorm})`);
  const keys = [...grads.keys()];
  // tidy only keeps tensors it can find in arrays and plain objects, not in a Map.
  const [totalNorm, ...clipped] = tf.tidy(() => {
    const norm = globalNorm(grads.values());
    const factor = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    return [norm, ...[...grads.values()].map((grad) => tf.mul(grad, factor))];
  });
  return {
    grads: new Map(keys.map((key, i) => [key, clipped[i]!])),
    totalNorm: totalNorm as tf.Scalar,
  };
}
