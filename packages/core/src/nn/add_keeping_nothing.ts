import * as tf from '@tensorflow/tfjs-core';
import { customOp } from './custom_op.js';

/** `dy` summed over the axes that `shape` broadcast along to make `outShape`, as `shape`. */
function reduceTo(dy: tf.Tensor, shape: number[], outShape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(shape, outShape);
  return tf.reshape(axes.length > 0 ? tf.sum(dy, axes) : dy, shape);
}

/**
 * `a + b` (broadcasting as `tf.add`) whose backward pass keeps nothing: an addition's gradients need
 * only the operands' shapes, but tfjs's `Add` keeps both operands for them, so every residual,
 * bias or adapter sum inside a gradient keeps a tensor of its size alive until the backward pass
 * (a matmul's output before its bias, an adapter's output, a block's output) that nothing else
 * needs. PyTorch's autograd keeps nothing for an addition either.
 */
export function addKeepingNothing(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
  return customOp([a, b], () => ({
    value: tf.add(a, b),
    gradients: (dy) => [() => reduceTo(dy, a.shape, outShape), () => reduceTo(dy, b.shape, outShape)],
  }));
}
