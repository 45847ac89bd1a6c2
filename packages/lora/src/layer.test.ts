import '@tensorflow/tfjs-backend-cpu';
import { Linear, manualSeed } from '@peft/core';
import { maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LoraLayer, loraScaling } from './layer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(() => manualSeed(2024));

/** Kolmogorov-Smirnov statistic of `values` against the CDF `cdf`. */
function ksStatistic(values: Float32Array, cdf: (x: number) => number): number {
  const sorted = Float64Array.from(values).sort();
  let d = 0;
  sorted.forEach((x, i) => {
    const f = cdf(x);
    d = Math.max(d, Math.abs(f - i / sorted.length), Math.abs((i + 1) / sorted.length - f));
  });
  return d;
}

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7)
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

function weights(layer: LoraLayer, name = 'default') {
  return {
    a: layer.loraA.get(name)!.weight.value.dataSync() as Float32Array,
    b: layer.loraB.get(name)!.weight.value.dataSync() as Float32Array,
  };
}

describe('LoraLayer initialisation (PEFT test_initialization)', () => {
  it('init_lora_weights=true: A is kaiming-uniform a=sqrt(5), i.e. U(±1/sqrt(in)), and B is exactly zero', () => {
    const inFeatures = 256;
    const layer = new LoraLayer(new Linear({ inFeatures, outFeatures: 32 }));
    layer.addAdapter('default', { r: 64, alpha: 8 });
    const { a, b } = weights(layer);
    const bound = 1 / Math.sqrt(inFeatures);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    const critical = 1.63 / Math.sqrt(a.length); // KS at the 1% level
    expect(ksStatistic(a, (x) => Math.min(1, Math.max(0, (x + bound) / (2 * bound))))).toBeLessThan(critical);
    const std = bound / Math.sqrt(3);
    expect(ksStatistic(a, (x) => 0.5 * (1 + erf(x / (std * Math.SQRT2))))).toBeGreaterThan(critical);
    expect(b.every((v) => v === 0)).toBe(true);
  });

  it('"gaussian": A ~ N(0, 1/r), B zero; false: B keeps nn.Linear init (non-zero)', () => {
    const layer = new LoraLayer(new Linear({ inFeatures: 128, outFeatures: 16 }));
    layer.addAdapter('gauss', { r: 4, alpha: 8, initLoraWeights: 'gaussian' });
    const { a, b } = weights(layer, 'gauss');
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const std = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
    expect(std).toBeCloseTo(1 / 4, 1);
    expect(ksStatistic(a, (x) => 0.5 * (1 + erf(x / (0.25 * Math.SQRT2))))).toBeLessThan(
      1.63 / Math.sqrt(a.length),
    );
    expect(b.every((v) => v === 0)).toBe(true);
    layer.addAdapter('none', { r: 4, alpha: 8, initLoraWeights: false });
    const plain = weights(layer, 'none');
    expect(plain.b.some((v) => v !== 0)).toBe(true);
    expect(Math.max(...plain.b.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(4)); // fan_in = r
  });

  it('scaling is alpha/r, or alpha/sqrt(r) with rsLoRA', () => {
    const layer = new LoraLayer(new Linear({ inFeatures: 8, outFeatures: 8 }));
    layer.addAdapter('plain', { r: 16, alpha: 8 });
    layer.addAdapter('rs', { r: 16, alpha: 8, useRslora: true });
    expect(layer.scaling('plain')).toBe(0.5);
    expect(layer.scaling('rs')).toBe(2);
    expect(loraScaling(32, 4)).toBe(8);
    expect(layer.rank('rs')).toBe(16);
  });

  it('refuses r <= 0 or a non-integer r and leaves the layer unchanged', () => {
    const layer = new LoraLayer(new Linear({ inFeatures: 8, outFeatures: 8 }));
    const before = tf.memory().numTensors;
    for (const r of [0, -2, 1.5]) {
      expect(() => layer.addAdapter('default', { r, alpha: 8 })).toThrow(
        `LoRA: r must be a positive integer (got ${r}) for adapter "default"`,
      );
    }
    expect(() => layer.addAdapter('default', { r: 2, alpha: 8, dropout: 1 })).toThrow(
      /Dropout: p must be in/,
    );
    expect(layer.adapterNames()).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('LoraLayer forward', () => {
  for (const fanInFanOut of [false, true]) {
    it(`computes base(x) + s·x·Aᵀ·Bᵀ (${fanInFanOut ? 'Conv1D' : 'Linear'} base layout)`, () => {
      const base = new Linear({ inFeatures: 6, outFeatures: 5, fanInFanOut });
      const layer = new LoraLayer(base);
      layer.addAdapter('default', { r: 3, alpha: 5, initLoraWeights: false });
      layer.setActiveAdapters(['default']);
      const x = tf.randomNormal([2, 4, 6], 0, 1, 'float32', 1);
      const a = layer.loraA.get('default')!.weight.value;
      const b = layer.loraB.get('default')!.weight.value;
      const expected = tf.tidy(() => {
        const w = fanInFanOut ? base.weight.value : tf.transpose(base.weight.value);
        const x2 = tf.reshape(x, [-1, 6]);
        const y = tf.add(
          tf.add(tf.matMul(x2, w), base.bias!.value),
          tf.mul(tf.matMul(tf.matMul(x2, a, false, true), b, false, true), 5 / 3),
        );
        return tf.reshape(y, [2, 4, 5]);
      });
      expect(maxAbsDiff(layer.forward(x), expected)).toBeLessThan(1e-5);
      const delta = layer.deltaWeight('default');
      expect(delta.shape).toEqual([5, 6]);
      expect(maxAbsDiff(delta, tf.mul(tf.matMul(b, a), 5 / 3))).toBeLessThan(1e-6);
    });
  }

  for (const loraBias of [false, true]) {
    it(`gives A and B the gradients of s·B(A(x))${loraBias ? ' with lora_bias' : ''} (the scaling on the rank side)`, () => {
      const layer = new LoraLayer(new Linear({ inFeatures: 6, outFeatures: 5 }));
      layer.addAdapter('default', { r: 3, alpha: 5, initLoraWeights: false, loraBias });
      layer.setActiveAdapters(['default']);
      const x = tf.randomNormal([4, 6], 0, 1, 'float32', 4);
      const dy = tf.randomNormal([4, 5], 0, 1, 'float32', 5);
      const a = layer.loraA.get('default')!.weight.variable;
      const b = layer.loraB.get('default')!.weight.variable;
      const bias = layer.loraB.get('default')!.bias?.value;
      // PEFT's order: B's output (its bias included) times s = 5/3.
      const reference = (av: tf.Tensor, bv: tf.Tensor) => {
        const up = tf.matMul(tf.matMul(x, av, false, true), bv, false, true);
        return tf.add(layer.baseLayer.forward(x), tf.mul(bias ? tf.add(up, bias) : up, 5 / 3));
      };
      const [da, db] = tf.grads(reference)([a, b], dy);
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(x), dy)), [a, b]);
      expect(maxAbsDiff(layer.forward(x), reference(a, b))).toBeLessThan(1e-5);
      expect(maxAbsDiff(grads[a.name]!, da!)).toBeLessThan(1e-5);
      expect(maxAbsDiff(grads[b.name]!, db!)).toBeLessThan(1e-5);
    });
  }

  it('applies dropout to the LoRA branch input in training only', () => {
    const layer = new LoraLayer(new Linear({ inFeatures: 16, outFeatures: 8 }));
    layer.addAdapter('default', { r: 4, alpha: 4, dropout: 0.5, initLoraWeights: false });
    layer.setActiveAdapters(['default']);
    const x = tf.randomNormal([4, 16], 0, 1, 'float32', 2);
    layer.eval();
    const evalOut = layer.forward(x);
    expect(maxAbsDiff(layer.forward(x), evalOut)).toBe(0);
    const baseOut = layer.baseLayer.forward(x);
    const clean = tf.mul(
      tf.matMul(
        tf.matMul(x, layer.loraA.get('default')!.weight.value, false, true),
        layer.loraB.get('default')!.weight.value,
        false,
        true,
      ),
      1,
    );
    expect(maxAbsDiff(evalOut, tf.add(baseOut, clean))).toBeLessThan(1e-5);
    layer.train();
    const trainOut = layer.forward(x);
    expect(maxAbsDiff(trainOut, evalOut)).toBeGreaterThan(1e-3);
  });

  it('lora_bias: B has a bias, added (scaled) to the base bias when merged', () => {
    const layer = new LoraLayer(new Linear({ inFeatures: 6, outFeatures: 4, fanInFanOut: true }));
    layer.addAdapter('default', { r: 2, alpha: 6, initLoraWeights: false, loraBias: true });
    layer.setActiveAdapters(['default']);
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 3);
    const adapted = layer.forward(x);
    const biasBefore = layer.baseLayer.bias!.value.clone();
    layer.merge();
    expect(maxAbsDiff(layer.forward(x), adapted)).toBeLessThan(1e-5);
    const expectedBias = tf.add(biasBefore, tf.mul(layer.loraB.get('default')!.bias!.value, 3));
    expect(maxAbsDiff(layer.baseLayer.bias!.value, expectedBias)).toBeLessThan(1e-6);
    layer.unmerge();
    expect(maxAbsDiff(layer.baseLayer.bias!.value, biasBefore)).toBeLessThan(1e-6);
  });
});
