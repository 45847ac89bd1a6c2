// addKeepingNothing: tf.add's values and gradients (every broadcasting case), and nothing kept for
// the backward pass where tfjs's Add keeps both operands.
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { addKeepingNothing } from './add_keeping_nothing.js';

beforeAll(async () => {
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  await tf.setBackend('cpu');
});

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('addKeepingNothing', () => {
  const shapes: [number[], number[]][] = [
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
    [[2, 3, 4], [4]],
    [
      [2, 1, 4],
      [3, 1],
    ],
    [[3], [2, 3]],
    [[3, 4], []],
  ];
  for (const [aShape, bShape] of shapes) {
    it(`gives tf.add's value and gradients for [${aShape}] + [${bShape}]`, () => {
      const a = tf.randomNormal(aShape, 0, 1, 'float32', 1);
      const b = tf.randomNormal(bShape, 0, 1, 'float32', 2);
      const outShape = tf.broadcast_util.assertAndGetBroadcastShape(aShape, bShape);
      const dy = tf.randomNormal(outShape, 0, 1, 'float32', 3);
      expect(maxAbsDiff(addKeepingNothing(a, b), tf.add(a, b))).toBe(0);
      const ours = tf.grads((x: tf.Tensor, y: tf.Tensor) => addKeepingNothing(x, y))([a, b], dy);
      const theirs = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.add(x, y))([a, b], dy);
      for (const [i, g] of ours.entries()) {
        expect(g.shape).toEqual(theirs[i]!.shape);
        expect(maxAbsDiff(g, theirs[i]!)).toBeLessThan(1e-6);
      }
    });
  }

  it("keeps nothing for the backward pass: a matmul's output before its bias is freed (tf.add keeps it)", () => {
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 4);
    const w = tf.randomNormal([4, 6], 0, 1, 'float32', 5);
    const bias = tf.randomNormal([6], 0, 1, 'float32', 6);
    /** Bytes alive after the forward pass, beyond its output, while the gradient is taken. */
    const keptBy = (add: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor) => {
      let kept = -1;
      const grads = tf.grads((input: tf.Tensor) => {
        const before = tf.memory().numBytes;
        const out = tf.tidy(() => add(tf.matMul(input, w), bias));
        kept = tf.memory().numBytes - before - out.size * 4;
        return tf.sum(out);
      })([x]);
      tf.dispose(grads);
      return kept;
    };
    // tfjs counts the bytes of every handle it keeps (a kept clone shares its buffer): MatMul keeps
    // its two operands, tfjs's Add its two (the [5, 6] product and the bias), ours none.
    const matMulKeeps = (5 * 4 + 4 * 6) * 4;
    expect(keptBy(addKeepingNothing)).toBe(matMulKeeps);
    expect(keptBy(tf.add)).toBe(matMulKeeps + (5 * 6 + 6) * 4);
  });
});
