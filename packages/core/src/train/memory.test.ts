import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { Parameter } from '../nn/parameter.js';
import { manualSeed } from '../nn/random.js';
import { AdamW } from './adamw.js';
import { measureMemory, measureStepPeak, tensorBytes } from './memory.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

/** A frozen Linear(4→3), a trainable Linear(3→2) without bias, and a frozen buffer of 5 values. */
class Model extends Module {
  readonly base = this.registerModule('base', new Linear({ inFeatures: 4, outFeatures: 3 }));
  readonly adapter = this.registerModule(
    'adapter',
    new Linear({ inFeatures: 3, outFeatures: 2, bias: false }),
  );
  constructor() {
    super();
    this.base.weight.requiresGrad = false;
    this.base.bias!.requiresGrad = false;
    this.registerBuffer('table', new Parameter(tf.zeros([5])));
  }
}

describe('measureMemory', () => {
  it('counts frozen weights and buffers, trainable weights and optimizer state in bytes', () => {
    manualSeed(1);
    const model = new Model();
    // frozen: 4·3 weight + 3 bias + 5 buffer floats; trainable: 3·2 floats; AdamW: two moments of those.
    expect(measureMemory(model)).toEqual({
      frozenBytes: (12 + 3 + 5) * 4,
      trainableBytes: 6 * 4,
      optimizerBytes: 0,
    });
    const optimizer = new AdamW(model.namedParameters());
    expect(measureMemory(model, optimizer)).toEqual({
      frozenBytes: 80,
      trainableBytes: 24,
      optimizerBytes: 2 * 6 * 4,
    });
    optimizer.dispose();
    model.dispose();
  });

  it('uses tfjs byte sizes per dtype', () => {
    expect(tensorBytes({ size: 10, dtype: 'float32' })).toBe(40);
    expect(tensorBytes({ size: 10, dtype: 'int32' })).toBe(40);
    expect(tensorBytes({ size: 10, dtype: 'bool' })).toBe(10);
  });
});

describe.each(['cpu', 'wasm'])('measureStepPeak on %s', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
  });

  /** A toy forward over `rows` rows: two [rows, 64] activations alive at once, freed by tidy. */
  function step(weight: tf.Tensor, rows: number): number {
    return tf.tidy(() => {
      const x = tf.ones([rows, 16]);
      const hidden = tf.relu(tf.matMul(x, weight));
      return tf.sum(tf.mul(hidden, hidden)).dataSync()[0]!;
    });
  }

  it('grows with the activations and ends where it started', async () => {
    const weight = tf.ones([16, 64]);
    const before = tf.memory().numTensors;
    const small = await measureStepPeak(() => step(weight, 8));
    const large = await measureStepPeak(() => step(weight, 256));
    expect(small.result).toBe(8 * 64 * 256);
    expect(small.baselineBytes).toBe(large.baselineBytes);
    // The x, matMul and relu outputs of [rows, 16] and [rows, 64] floats are alive together.
    expect(small.peakBytes - small.baselineBytes).toBeGreaterThanOrEqual(8 * (16 + 64 + 64) * 4);
    expect(large.peakBytes - large.baselineBytes).toBeGreaterThanOrEqual(256 * (16 + 64 + 64) * 4);
    expect(tf.memory().numTensors).toBe(before);
    weight.dispose();
  });

  it('passes errors through and leaves profiling off', async () => {
    await expect(
      measureStepPeak(() => {
        tf.tidy(() => tf.add(tf.ones([2]), tf.ones([2])));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await expect(measureStepPeak(() => measureStepPeak(() => 1))).rejects.toThrow(/cannot be nested/);
    const empty = await measureStepPeak(() => 3);
    expect(empty).toEqual({
      result: 3,
      baselineBytes: tf.memory().numBytes,
      peakBytes: tf.memory().numBytes,
    });
  });
});
