// customOp: tf.customGrad's values and gradients, with an input's gradient computed only when the
// gradient taken flows to that input.
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { customOp } from './custom_op.js';

beforeAll(async () => {
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  await tf.setBackend('cpu');
});

/** x·y (element-wise) with its gradient, counting how often each input's gradient is computed. */
function countedProduct() {
  const calls = [0, 0];
  const op = (x: tf.Tensor, y: tf.Tensor) =>
    customOp([x, y], (save) => {
      save([x, y]);
      return {
        value: tf.mul(x, y),
        gradients: (dy, [sx, sy]) => [
          () => {
            calls[0]!++;
            return tf.mul(dy, sy!);
          },
          () => {
            calls[1]!++;
            return tf.mul(dy, sx!);
          },
        ],
      };
    });
  return { op, calls };
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('customOp', () => {
  it('gives the value and every input gradient of the op it defines (against tf.mul)', () => {
    const x = tf.tensor([[1, -2, 3]]);
    const y = tf.tensor([[0.5, 4, -1]]);
    const dy = tf.tensor([[2, 3, -5]]);
    const { op, calls } = countedProduct();
    expect(maxAbsDiff(op(x, y), tf.mul(x, y))).toBe(0);
    const got = tf.grads((a: tf.Tensor, b: tf.Tensor) => op(a, b))([x, y], dy);
    const want = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.mul(a, b))([x, y], dy);
    expect(maxAbsDiff(got[0]!, want[0]!)).toBe(0);
    expect(maxAbsDiff(got[1]!, want[1]!)).toBe(0);
    expect(calls).toEqual([1, 1]);
  });

  it('computes only the gradients of inputs the gradient flows to (tf.customGrad computes all)', () => {
    const { op, calls } = countedProduct();
    const w = tf.variable(tf.tensor([0.5, 4, -1]));
    const frozenInput = tf.tensor([1, -2, 3]); // not a variable, not derived from one
    const { value, grads } = tf.variableGrads(() => tf.sum(op(frozenInput, w)));
    expect(Array.from(grads[w.name]!.dataSync())).toEqual([1, -2, 3]);
    expect(calls).toEqual([0, 1]);
    tf.dispose([value, ...Object.values(grads)]);
  });

  it('leaves no tensor behind, with or without gradients', () => {
    const { op } = countedProduct();
    const x = tf.tensor([1, 2]);
    const w = tf.variable(tf.tensor([3, 4]));
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      op(x, w);
    });
    const { value, grads } = tf.variableGrads(() => tf.sum(op(x, w)));
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('names the mismatch when the gradient functions do not match the inputs', () => {
    const x = tf.variable(tf.tensor([1, 2]));
    const broken = (): tf.Scalar =>
      tf.sum(customOp([x, x], () => ({ value: tf.mul(x, 2), gradients: (dy) => [() => tf.mul(dy, 2)] })));
    expect(() => tf.variableGrads(broken)).toThrow('customOp: 1 gradient functions for 2 inputs');
  });
});
