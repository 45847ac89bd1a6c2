import '@tensorflow/tfjs-backend-cpu';
import { manualSeed } from '@peft/core';
import { maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { PrefixEncoder } from './layer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const T = 4;
const LAYERS = 3;
const HEADS = 2;
const HEAD_DIM = 3;
const TOKEN_DIM = HEADS * HEAD_DIM;
const WIDTH = LAYERS * 2 * TOKEN_DIM;

/** Entry [t, c] = 1000·t + c: every value says where it sits in PEFT's flat layout. */
function labelledTable(): tf.Tensor {
  return tf.tensor2d(
    Array.from({ length: T * WIDTH }, (_, i) => 1000 * Math.floor(i / WIDTH) + (i % WIDTH)),
    [T, WIDTH],
  );
}

describe('PrefixEncoder', () => {
  it("reads each flat prefix vector as [layer, k/v, head, dim] (PEFT's view and permute)", () => {
    const encoder = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
      inferenceMode: true,
      weight: labelledTable(),
    });
    for (let layer = 0; layer < LAYERS; layer++) {
      const { key, value } = encoder.prefix(layer, 2);
      expect(key.shape).toEqual([2, HEADS, T, HEAD_DIM]);
      const keys = key.arraySync() as number[][][][];
      const values = value.arraySync() as number[][][][];
      for (let b = 0; b < 2; b++)
        for (let h = 0; h < HEADS; h++)
          for (let t = 0; t < T; t++)
            for (let d = 0; d < HEAD_DIM; d++) {
              const column = (kv: number) => ((layer * 2 + kv) * HEADS + h) * HEAD_DIM + d;
              expect(keys[b]![h]![t]![d]).toBe(1000 * t + column(0));
              expect(values[b]![h]![t]![d]).toBe(1000 * t + column(1));
            }
      tf.dispose([key, value]);
    }
    encoder.dispose();
  });

  it('with the projection, each layer slice is the matching columns of Linear(Tanh(Linear(embedding)))', () => {
    manualSeed(3);
    const encoder = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
      prefixProjection: true,
      encoderHiddenSize: 5,
    });
    expect(encoder.prefixProjection).toBe(true);
    expect([...encoder.namedParameters()].map(([name, p]) => [name, p.shape])).toEqual([
      ['embedding.weight', [T, TOKEN_DIM]],
      ['transform.0.weight', [5, TOKEN_DIM]],
      ['transform.0.bias', [5]],
      ['transform.2.weight', [WIDTH, 5]],
      ['transform.2.bias', [WIDTH]],
    ]);
    const params = new Map([...encoder.namedParameters()].map(([name, p]) => [name, p.value]));
    const manual = tf.tidy(() => {
      const hidden = tf.tanh(
        tf.add(
          tf.matMul(params.get('embedding.weight')!, params.get('transform.0.weight')!, false, true),
          params.get('transform.0.bias')!,
        ),
      );
      return tf.add(
        tf.matMul(hidden, params.get('transform.2.weight')!, false, true),
        params.get('transform.2.bias')!,
      );
    });
    const output = encoder.output();
    expect(maxAbsDiff(output, manual)).toBeLessThan(1e-6);
    for (let layer = 0; layer < LAYERS; layer++) {
      const slice = encoder.layerOutput(layer);
      const columns = tf.slice(manual, [0, layer * 2 * TOKEN_DIM], [T, 2 * TOKEN_DIM]);
      expect(maxAbsDiff(slice, columns)).toBeLessThan(1e-6);
      tf.dispose([slice, columns]);
    }
    tf.dispose([manual, output]);
    encoder.dispose();
  });

  it('initialises as PEFT: embedding N(0, 1); init_weights "zero" zeroes the last Linear or the embedding', () => {
    manualSeed(4);
    const plain = new PrefixEncoder({ numVirtualTokens: 20, numLayers: 10, tokenDim: 25, numHeads: 5 });
    const { mean, variance } = tf.moments(plain.embedding.weight.value);
    expect(Math.abs(mean.dataSync()[0]!)).toBeLessThan(0.05);
    expect(Math.sqrt(variance.dataSync()[0]!)).toBeCloseTo(1, 1);
    tf.dispose([mean, variance]);
    const zero = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
      initWeights: 'zero',
    });
    expect(tf.any(tf.notEqual(zero.embedding.weight.value, 0)).dataSync()[0]).toBe(0);
    const projected = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
      prefixProjection: true,
      initWeights: 'zero',
    });
    const last = projected.transform!.get('2')!;
    expect(tf.any(tf.notEqual(last.weight.value, 0)).dataSync()[0]).toBe(0);
    expect(tf.any(tf.notEqual(last.bias!.value, 0)).dataSync()[0]).toBe(0);
    // The rest keeps its random init, so the projection can still learn.
    expect(tf.any(tf.notEqual(projected.embedding.weight.value, 0)).dataSync()[0]).toBe(1);
    const output = projected.output();
    expect(tf.any(tf.notEqual(output, 0)).dataSync()[0]).toBe(0);
    output.dispose();
    for (const e of [plain, zero, projected]) e.dispose();
  });

  it('in inference mode is a frozen plain table, whatever prefixProjection says (as PEFT)', () => {
    const encoder = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
      prefixProjection: true,
      inferenceMode: true,
    });
    expect(encoder.prefixProjection).toBe(false);
    expect(encoder.transform).toBeNull();
    expect(encoder.embedding.weight.shape).toEqual([T, WIDTH]);
    encoder.dispose();
  });

  it('the gradient of a layer prefix reaches only that layer’s columns of the table', () => {
    manualSeed(5);
    const encoder = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
    });
    const { grads, value } = tf.variableGrads(() =>
      tf.tidy(() => {
        const { key, value } = encoder.prefix(1, 3);
        return tf.add(tf.sum(key), tf.mul(2, tf.sum(value))) as tf.Scalar;
      }),
    );
    const grad = grads[encoder.embedding.weight.value.name]!.arraySync() as number[][];
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < WIDTH; c++) {
        const layer = Math.floor(c / (2 * TOKEN_DIM));
        const isValue = Math.floor(c / TOKEN_DIM) % 2 === 1;
        // Each key entry is used by 3 batch rows; values are weighted by 2.
        expect(grad[t]![c]).toBe(layer === 1 ? (isValue ? 6 : 3) : 0);
      }
    }
    tf.dispose([value, ...Object.values(grads)]);
    encoder.dispose();
  });

  it('keeps only the last saved projection and frees everything on dispose', () => {
    manualSeed(6);
    const before = tf.memory().numTensors;
    const encoder = new PrefixEncoder({
      numVirtualTokens: T,
      numLayers: LAYERS,
      tokenDim: TOKEN_DIM,
      numHeads: HEADS,
      prefixProjection: true,
    });
    const first = encoder.savedEmbeddings();
    const second = encoder.savedEmbeddings();
    expect(first.isDisposed).toBe(true);
    expect(second.shape).toEqual([T, WIDTH]);
    encoder.dispose();
    expect(second.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad sizes and layer indices', () => {
    expect(() => new PrefixEncoder({ numVirtualTokens: 0, numLayers: 1, tokenDim: 4, numHeads: 2 })).toThrow(
      /numVirtualTokens must be a positive integer/,
    );
    expect(() => new PrefixEncoder({ numVirtualTokens: 2, numLayers: 1, tokenDim: 5, numHeads: 2 })).toThrow(
      /tokenDim 5 is not a multiple of numHeads 2/,
    );
    const encoder = new PrefixEncoder({ numVirtualTokens: 2, numLayers: 2, tokenDim: 4, numHeads: 2 });
    expect(() => encoder.prefix(2, 1)).toThrow(/layer 2 is not in \[0, 2\)/);
    encoder.dispose();
  });
});
