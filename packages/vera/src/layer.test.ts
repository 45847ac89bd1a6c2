import '@tensorflow/tfjs-backend-cpu';
import { Linear, manualSeed, Parameter } from '@peft/core';
import { maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { VeraLayer, type VeraLayerConfig } from './layer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(() => manualSeed(2024));

/** Shared projections larger than the layer: A [r, 7], B [6, r]. */
function projections(r = 4): { projectionA: Parameter; projectionB: Parameter } {
  return {
    projectionA: new Parameter(tf.randomUniform([r, 7], -1, 1, 'float32', 1), { requiresGrad: false }),
    projectionB: new Parameter(tf.randomUniform([6, r], -1, 1, 'float32', 2), { requiresGrad: false }),
  };
}

function layerWith(fanInFanOut: boolean, config: Partial<VeraLayerConfig> = {}) {
  const shared = projections();
  const layer = new VeraLayer(new Linear({ inFeatures: 5, outFeatures: 3, fanInFanOut }));
  layer.addAdapter('default', { r: 4, ...shared, ...config });
  layer.setActiveAdapters(['default']);
  return { layer, ...shared };
}

describe('VeraLayer', () => {
  it('initialises λ_b = 0 and λ_d = d_initial (identity), or ones and N(0, 1) with init_weights=false', () => {
    const { layer } = layerWith(false, { dInitial: 0.25 });
    expect([...layer.veraLambdaB.get('default')!.value.dataSync()]).toEqual([0, 0, 0]);
    expect([...layer.veraLambdaD.get('default')!.value.dataSync()]).toEqual([0.25, 0.25, 0.25, 0.25]);
    const x = tf.randomNormal([2, 5], 0, 1, 'float32', 3);
    expect(maxAbsDiff(layer.forward(x), layer.baseLayer.forward(x))).toBe(0);
    const shared = projections();
    layer.addAdapter('raw', { r: 4, ...shared, initWeights: false });
    expect([...layer.veraLambdaB.get('raw')!.value.dataSync()]).toEqual([1, 1, 1]);
    const d = layer.veraLambdaD.get('raw')!.value.dataSync();
    expect(new Set(d).size).toBe(4);
  });

  for (const fanInFanOut of [false, true]) {
    it(`computes base(x) + λ_b ⊙ (B_s (λ_d ⊙ (A_s x))) with top-left slices, and merges the same delta (fan_in_fan_out=${fanInFanOut})`, () => {
      const { layer, projectionA, projectionB } = layerWith(fanInFanOut, { initWeights: false });
      const lambdaB = layer.veraLambdaB.get('default')!;
      lambdaB.assign(tf.tensor1d([0.5, -1.5, 2]));
      const x = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 4);
      const aS = tf.slice(projectionA.value, [0, 0], [4, 5]);
      const bS = tf.slice(projectionB.value, [0, 0], [3, 4]);
      const lambdaD = layer.veraLambdaD.get('default')!.value;
      const expected = tf.add(
        layer.baseLayer.forward(x),
        tf.mul(lambdaB.value, tf.matMul(tf.mul(lambdaD, tf.matMul(x, aS, false, true)), bS, false, true)),
      );
      expect(maxAbsDiff(layer.forward(x), expected)).toBeLessThan(1e-6);
      const sliced = layer.slicedProjections('default');
      expect(sliced.a.shape).toEqual([4, 5]);
      expect(sliced.b.shape).toEqual([3, 4]);
      expect(maxAbsDiff(sliced.a, aS)).toBe(0);
      expect(maxAbsDiff(sliced.b, bS)).toBe(0);
      const delta = layer.deltaWeight('default');
      expect(delta.shape).toEqual([3, 5]);
      layer.merge();
      expect(maxAbsDiff(layer.forward(x), expected)).toBeLessThan(1e-5);
      layer.unmerge();
      expect(maxAbsDiff(layer.forward(x), expected)).toBeLessThan(1e-6);
    });
  }

  it('applies dropout to the VeRA branch input in training only', () => {
    const { layer } = layerWith(false, { initWeights: false, dropout: 0.5 });
    const x = tf.ones([4, 5]);
    layer.eval();
    const evalOut = layer.forward(x);
    expect(maxAbsDiff(layer.forward(x), evalOut)).toBe(0);
    layer.train();
    expect(maxAbsDiff(layer.forward(x), evalOut)).toBeGreaterThan(1e-4);
  });

  it("refuses projections that do not fit the layer, or of another rank, with PEFT's messages", () => {
    const layer = new VeraLayer(new Linear({ inFeatures: 9, outFeatures: 3 }));
    expect(() => layer.addAdapter('a', { r: 4, ...projections() })).toThrow(
      /vera_A has a size of 7 but 9 or greater is required/,
    );
    const tall = new VeraLayer(new Linear({ inFeatures: 5, outFeatures: 8 }));
    expect(() => tall.addAdapter('a', { r: 4, ...projections() })).toThrow(
      /vera_B has a size of 6 but 8 or greater is required/,
    );
    const ok = new VeraLayer(new Linear({ inFeatures: 5, outFeatures: 3 }));
    expect(() => ok.addAdapter('a', { r: 8, ...projections() })).toThrow(/rank 4 but adapter "a" has r=8/);
    expect(() => ok.addAdapter('a', { r: 2, ...projections() })).toThrow(/rank 4 but adapter "a" has r=2/);
    expect(() => ok.addAdapter('a', { r: 0, ...projections() })).toThrow(/positive integer/);
    expect(ok.adapterNames()).toEqual([]);
    ok.addAdapter('a', { r: 4, ...projections() });
    expect(() => ok.addAdapter('a', { r: 4, ...projections() })).toThrow(/already has an adapter "a"/);
  });

  it('removing an adapter drops its vectors but leaves the shared projections alone', () => {
    const { layer, projectionA, projectionB } = layerWith(false);
    layer.removeAdapter('default');
    expect(layer.adapterNames()).toEqual([]);
    expect([...layer.namedParameters()].map(([n]) => n)).toEqual(['base_layer.weight', 'base_layer.bias']);
    expect(projectionA.isDisposed || projectionB.isDisposed).toBe(false);
  });
});
