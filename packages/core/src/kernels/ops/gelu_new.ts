import * as tf from '@tensorflow/tfjs-core';
import { fusedKernelsActive, PEFT_GELU_NEW } from '../wasm/Fused.js';

/** sqrt(2/pi): gelu_new = 0.5·x·(1 + tanh(c·(x + 0.044715·x³))) with this c. */
const C = Math.sqrt(2 / Math.PI);
const A = 0.044715;

/**
 * The forward as x·sigmoid(z), z = 2c·(x + a·x³) = x·(2c + 2ca·x²) (0.5·(1 + tanh w) = sigmoid(2w)).
 * On wasm, Tanh and Pow are scalar C++ loops (~30-40 ms each on 1.5M floats) while Sigmoid is
 * XNNPACK's (~4 ms) and the rest are SIMD binary ops.
 */
const geluNewWithGrad = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const x2 = tf.square(x);
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(x2, 2 * C * A), 2 * C)));
  save([x, x2, s]);
  return {
    value: tf.mul(x, s),
    // d/dx x·s(z) = s + x·s·(1 - s)·z', z' = 2c + 6ca·x²  =  s·(1 + x·(1 - s)·z')
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sx2, ss] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const dz = tf.add(tf.mul(sx2, 6 * C * A), 2 * C);
      const inner = tf.add(tf.mul(tf.mul(sx, tf.sub(1, ss)), dz), 1);
      return tf.mul(dy, tf.mul(ss, inner));
    },
  };
});

/**
 * GELU with the tanh approximation (`gelu_new` / `gelu_pytorch_tanh` in Hugging Face
 * transformers, GPT-2's activation): 0.5·x·(1 + tanh(sqrt(2/pi)·(x + 0.044715·x³))), computed
 * exactly as x·sigmoid(2·sqrt(2/pi)·(x + 0.044715·x³)), with its analytic gradient. Any backend;
 * on wasm with core's kernels registered, forward and backward are one fused SIMD pass each that
 * keep only x for the backward pass.
 */
export function geluNew<T extends tf.Tensor>(x: T | tf.TensorLike): T {
  const $x = x instanceof tf.Tensor ? x : tf.tensor(x);
  const input = $x.dtype === 'float32' ? $x : tf.cast($x, 'float32');
  if (fusedKernelsActive(PEFT_GELU_NEW)) return tf.engine().runKernel(PEFT_GELU_NEW, { x: input }) as T;
  return geluNewWithGrad(input) as T;
}
