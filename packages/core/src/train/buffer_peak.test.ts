import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import '../backend/register_gradients.js';
import { measureBufferPeak } from './buffer_peak.js';
import { measureStepPeak } from './memory.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('measureBufferPeak', () => {
  it('counts a buffer once however many handles share it (reshapes, clones)', () => {
    const { peakBytes, endBytes, result } = measureBufferPeak(() => {
      const a = tf.zeros([4, 8]); // 128 bytes
      const views = [tf.reshape(a, [32]), tf.clone(a), tf.reshape(a, [8, 4])];
      const b = tf.ones([10]); // 40 bytes
      tf.dispose([a, ...views, b]);
      return 7;
    });
    expect(result).toBe(7);
    expect(peakBytes).toBe(128 + 40);
    expect(endBytes).toBe(0);
  });

  it('frees a buffer only with its last handle, and sees buffers that outlive fn', () => {
    let kept: tf.Tensor | undefined;
    const { peakBytes, endBytes } = measureBufferPeak(() => {
      const a = tf.zeros([16]); // 64 bytes
      kept = tf.reshape(a, [4, 4]);
      a.dispose();
      tf.tidy(() => {
        tf.add(kept!, 1); // 64 more and a 4-byte scalar, freed by tidy
      });
    });
    expect(peakBytes).toBe(64 + 64 + 4);
    expect(endBytes).toBe(64);
    kept!.dispose();
  });

  it('sees the tape keep an input alive, which tfjs counts once per kept handle', async () => {
    const w = tf.variable(tf.ones([8, 8]), false); // frozen: a MatMul still keeps it and x
    const x = tf.variable(tf.ones([2, 8]));
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.matMul(tf.mul(x, 2), w)) as tf.Scalar, [x]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    const buffers = measureBufferPeak(step);
    const handles = await measureStepPeak(step);
    // The kept copy of w adds 256 bytes to tfjs's count and nothing to the buffers.
    expect(handles.peakBytes - handles.baselineBytes).toBeGreaterThanOrEqual(buffers.peakBytes + 256);
    expect(buffers.endBytes).toBe(0);
    tf.dispose([w, x]);
  });

  it('restores the engine, also when fn throws, and refuses to nest', () => {
    const engine = tf.engine() as unknown as Record<string, unknown>;
    expect(() =>
      measureBufferPeak(() => {
        expect(() => measureBufferPeak(() => 0)).toThrow(/nested/);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(Object.hasOwn(engine, 'trackTensor')).toBe(false);
    expect(Object.hasOwn(engine, 'disposeTensor')).toBe(false);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.ones([3]);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
