import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { clipGradNorm, globalNorm } from './clip.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('clipGradNorm', () => {
  // Two gradients whose global norm is sqrt(3² + 4² + 12²) = 13.
  const make = () =>
    new Map<string, tf.Tensor>([
      ['a', tf.tensor([3, 4])],
      ['b', tf.tensor([[12]])],
    ]);

  it('scales by maxNorm / (total + 1e-6) when the total norm exceeds maxNorm, returning the pre-clip norm', () => {
    const grads = make();
    const { grads: clipped, totalNorm } = clipGradNorm(grads, 1);
    expect(totalNorm.dataSync()[0]).toBe(13);
    const factor = 1 / (13 + 1e-6);
    const a = clipped.get('a')!.dataSync();
    expect(a[0]).toBeCloseTo(3 * factor, 7);
    expect(a[1]).toBeCloseTo(4 * factor, 7);
    expect(clipped.get('b')!.shape).toEqual([1, 1]);
    expect(clipped.get('b')!.dataSync()[0]).toBeCloseTo(12 * factor, 7);
    const clippedNorm = globalNorm(clipped.values());
    expect(clippedNorm.dataSync()[0]).toBeCloseTo(1, 6);
    clippedNorm.dispose();
    tf.dispose([...grads.values(), ...clipped.values(), totalNorm]);
  });

  it('leaves gradients bit-identical when the norm is within maxNorm', () => {
    const grads = make();
    const { grads: clipped, totalNorm } = clipGradNorm(grads, 13.5);
    expect(totalNorm.dataSync()[0]).toBe(13);
    expect(clipped.get('a')!.dataSync()).toEqual(new Float32Array([3, 4]));
    expect(clipped.get('b')!.dataSync()).toEqual(new Float32Array([12]));
    tf.dispose([...grads.values(), ...clipped.values(), totalNorm]);
  });

  it('reports a non-finite norm', () => {
    const grads = new Map([['a', tf.tensor([1, Number.NaN])]]);
    const { grads: clipped, totalNorm } = clipGradNorm(grads, 1);
    expect(totalNorm.dataSync()[0]).toBeNaN();
    tf.dispose([...grads.values(), ...clipped.values(), totalNorm]);
  });

  it('creates no tensor besides its results and rejects a non-positive maxNorm', () => {
    const grads = make();
    const before = tf.memory().numTensors;
    const { grads: clipped, totalNorm } = clipGradNorm(grads, 1);
    expect(tf.memory().numTensors).toBe(before + 3);
    tf.dispose([...grads.values(), ...clipped.values(), totalNorm]);
    expect(() => clipGradNorm(new Map(), 0)).toThrow(/maxNorm/);
  });
});
