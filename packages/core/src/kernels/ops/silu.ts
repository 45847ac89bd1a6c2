import * as tf from '@tensorflow/tfjs-core';

const siluWithGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const s = tf.sigmoid(x);
  save([x, s]);
  return {
    value: tf.mul(x, s),
    // d/dx x·s(x) = s·(1 + x·(1 - s))
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, ss] = saved as [tf.Tensor, tf.Tensor];
      return tf.mul(dy, tf.mul(ss, tf.add(tf.mul(sx, tf.sub(1, ss)), 1)));
    },
  };
});

/**
 * SiLU (swish), x·sigmoid(x): LLaMA's MLP activation, with its analytic gradient (one saved
 * sigmoid instead of autodiff through mul and sigmoid). Any backend.
 */
export function silu<T extends tf.Tensor>(x: T | tf.TensorLike): T {
  const $x = x instanceof tf.Tensor ? x : tf.tensor(x);
  return siluWithGrad($x.dtype === 'float32' ? $x : tf.cast($x, 'float32')) as T;
}
