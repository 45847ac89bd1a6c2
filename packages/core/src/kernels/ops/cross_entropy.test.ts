// crossEntropy (PyTorch's F.cross_entropy with ignore_index) on wasm's fused kernels and composed on
// cpu, against tfjs's own losses.softmaxCrossEntropy on cpu (one-hot labels, weights for ignored
// rows) and against closed forms: values and gradients, a class count that is not a multiple of 4,
// a target probability that underflows, no counted row, bad targets, no leaks.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerAllGradients } from '../../backend/register_gradients.js';
import { registerTrainingKernels } from '../register_kernels.js';
import { crossEntropy } from './cross_entropy.js';

beforeAll(async () => {
  registerAllGradients();
  registerTrainingKernels();
  await tf.setBackend('cpu');
});

/** The loss and its gradient for the logits (a fresh tensor from `values` on `backend`). */
async function lossAndGrad(
  backend: string,
  shape: number[],
  values: Float32Array,
  loss: (logits: tf.Tensor) => tf.Scalar,
): Promise<{ loss: number; grad: Float32Array; kernels: string[] }> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const logits = tf.tensor(values, shape);
  const lossAndGradient = tf.valueAndGrad((x: tf.Tensor) => loss(x));
  const info = await tf.profile(() => {
    const { value, grad } = lossAndGradient(logits);
    tf.dispose([value, grad]);
  });
  const { value, grad } = lossAndGradient(logits);
  const result = {
    loss: value.dataSync()[0]!,
    grad: grad.dataSync() as Float32Array,
    kernels: info.kernelNames,
  };
  tf.dispose([value, grad, logits]);
  expect(tf.memory().numTensors).toBe(before);
  return result;
}

/** tfjs's own loss on cpu: one-hot labels, weight 0 on ignored rows, mean over the weighted rows. */
function tfjsReference(targets: number[], classes: number, ignoreIndex = -100) {
  return (logits: tf.Tensor) =>
    tf.tidy(() => {
      const flat = tf.reshape(logits, [-1, classes]);
      const labels = tf.oneHot(
        tf.tensor1d(
          targets.map((t) => (t === ignoreIndex ? 0 : t)),
          'int32',
        ),
        classes,
      );
      const weights = tf.tensor1d(targets.map((t) => (t === ignoreIndex ? 0 : 1)));
      return tf.losses.softmaxCrossEntropy(labels, flat, weights) as tf.Scalar;
    });
}

function randomLogits(size: number, seed: number, scale: number): Float32Array {
  return tf.tidy(() => tf.randomNormal([size], 0, scale, 'float32', seed).dataSync() as Float32Array);
}

function maxRelativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1e-3 + Math.abs(b[i]!)));
  return worst;
}

describe('crossEntropy', () => {
  const cases: [string, number[], number][] = [
    ['256 classes, every row counted', [8, 5, 256], 256],
    ['13 classes (not a multiple of 4), ignored rows', [3, 7, 13], 13],
  ];
  for (const [name, shape, classes] of cases) {
    it(`${name}: fused on wasm and composed on cpu match tfjs's softmaxCrossEntropy`, async () => {
      const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const ignore = classes === 13;
      const targets = Array.from({ length: rows }, (_, i) =>
        ignore && i % 4 === 1 ? -100 : (i * 7 + 3) % classes,
      );
      const values = randomLogits(rows * classes, 3, 4);
      const reference = await lossAndGrad('cpu', shape, values, tfjsReference(targets, classes));
      const fused = await lossAndGrad('wasm', shape, values, (x) => crossEntropy(x, targets));
      const composed = await lossAndGrad('cpu', shape, values, (x) => crossEntropy(x, targets));
      expect(fused.kernels).toContain('PeftCrossEntropy');
      expect(composed.kernels).not.toContain('PeftCrossEntropy');
      for (const run of [fused, composed]) {
        expect(Math.abs(run.loss - reference.loss) / reference.loss).toBeLessThan(1e-5);
        expect(maxRelativeDifference(run.grad, reference.grad)).toBeLessThan(1e-3);
      }
      if (ignore) {
        // Ignored rows get no gradient at all.
        for (let i = 1; i < rows; i += 4) {
          expect(Array.from(fused.grad.subarray(i * classes, (i + 1) * classes)).every((g) => g === 0)).toBe(
            true,
          );
        }
      }
    });
  }

  for (const backend of ['wasm', 'cpu']) {
    it(`${backend}: equal logits give log(classes) and (1/classes - onehot)/rows`, async () => {
      const { loss, grad } = await lossAndGrad(backend, [4, 10], new Float32Array(40), (x) =>
        crossEntropy(x, [1, 2, 3, 9]),
      );
      expect(loss).toBeCloseTo(Math.log(10), 6);
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 10; j++) {
          expect(grad[i * 10 + j]).toBeCloseTo((0.1 - (j === [1, 2, 3, 9][i] ? 1 : 0)) / 4, 7);
        }
      }
    });

    it(`${backend}: a target 200 below the row's other logits costs 200 + log(classes - 1), not a clamp`, async () => {
      // softmax gives the target e^-200 (0 in float32): the loss must come from the logits.
      const values = new Float32Array(2 * 9);
      values[4] = -200;
      const { loss, grad } = await lossAndGrad(backend, [2, 9], values, (x) => crossEntropy(x, [4, -100]));
      expect(loss).toBeCloseTo(200 + Math.log(8), 3);
      expect(grad[4]).toBeCloseTo(-1, 6);
      expect(grad[0]).toBeCloseTo(1 / 8, 6);
    });

    it(`${backend}: no counted row gives NaN, as in PyTorch`, async () => {
      await tf.setBackend(backend);
      const loss = tf.tidy(() => crossEntropy(tf.zeros([2, 8]), [-100, -100]).dataSync()[0]);
      expect(loss).toBeNaN();
    });
  }

  it('takes targets as an int32 tensor of the logits shape without the class axis', async () => {
    await tf.setBackend('wasm');
    const values = randomLogits(2 * 3 * 16, 5, 2);
    const [fromArray, fromTensor] = tf.tidy(() => {
      const logits = tf.tensor(values, [2, 3, 16]);
      return [
        crossEntropy(logits, [1, 2, 3, 4, 5, 15]).dataSync()[0],
        crossEntropy(logits, tf.tensor2d([1, 2, 3, 4, 5, 15], [2, 3], 'int32')).dataSync()[0],
      ];
    });
    expect(fromTensor).toBe(fromArray);
  });

  it('names bad targets and logits', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const logits = tf.zeros([2, 5]);
    expect(() => crossEntropy(logits, [1, 5])).toThrow(
      'crossEntropy: target 5 of row 1 is not a class in [0, 5) nor ignoreIndex (-100)',
    );
    expect(() => crossEntropy(logits, [1, -1])).toThrow('target -1 of row 1');
    expect(() => crossEntropy(logits, [1, 0.5])).toThrow('target 0.5 of row 1');
    expect(() => crossEntropy(logits, [1])).toThrow('crossEntropy: 1 targets for 2 rows of logits');
    const made = [tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([1, 2]), tf.zeros([2, 5], 'int32')];
    expect(() => crossEntropy(logits, made[0]!)).toThrow(
      'crossEntropy: targets of shape [3] for logits [2,5] (expected [2])',
    );
    expect(() => crossEntropy(logits, made[1]!)).toThrow(
      'crossEntropy: targets must be int32 class indices (got float32)',
    );
    expect(() => crossEntropy(made[2]!, [1, 2])).toThrow('crossEntropy: logits must be float32 (got int32)');
    tf.dispose(made);
    const withIgnoreIndex = tf.tidy(() => crossEntropy(logits, [1, 7], { ignoreIndex: 7 }).dataSync()[0]);
    expect(withIgnoreIndex).toBeCloseTo(Math.log(5), 6);
    logits.dispose();
    // The rejected calls left nothing behind.
    expect(tf.memory().numTensors).toBe(before);
  });
});
