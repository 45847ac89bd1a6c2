// The wrapped layer once its base weight has moved: disabling, merging, unloading and removing keep
// `W = W_original + D` straight.
import { type PeftModel, Trainer } from '@peft/core';
import { getLoraModel, loraConfig } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { deltaLoraConfig } from './config.js';
import { getDeltaLoraModel } from './index.js';
import { DeltaLoraLayer } from './layer.js';
import { createOptimizer } from './optimizer.js';
import {
  batches,
  bitwiseEqual,
  logitsOf,
  singularValues,
  snapshot,
  tinyGpt2,
} from './test_models.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const SEED = 11;

/** A tiny GPT-2 with a Delta-LoRA adapter trained past its start step (W has moved). */
async function trained(): Promise<PeftModel<CausalLM>> {
  const peft = getDeltaLoraModel(tinyGpt2(SEED), { r: 2, loraAlpha: 4, updateStartSteps: 0 });
  const trainer = new Trainer({
    module: peft,
    loss: (ids: number[][]) => causalLMLoss(peft.model, ids),
    optimizer: createOptimizer(peft, { lr: 0.05 }),
  });
  await trainer.train(batches(700, 4));
  peft.eval();
  return peft;
}

function layers(peft: PeftModel): [string, DeltaLoraLayer][] {
  return peft.adapterLayers() as [string, DeltaLoraLayer][];
}

/** Largest difference of the base weights from the original model's. */
function baseWeightDrift(peft: PeftModel<CausalLM>, original: Map<string, tf.Tensor>): number {
  let worst = 0;
  for (const [name, parameter] of peft.model.namedTensors()) {
    const key = name.replace('.base_layer.', '.');
    if (name.includes('.lora_')) continue;
    worst = Math.max(worst, maxAbsDiff(parameter.value, original.get(key)!));
  }
  return worst;
}

describe('DeltaLoraLayer', () => {
  it('is a layer of its own technique holding one adapter', async () => {
    const peft = await trained();
    const [, layer] = layers(peft)[0]!;
    expect(layer).toBeInstanceOf(DeltaLoraLayer);
    expect(layer.methodName).toBe('delta-lora');
    expect(() => peft.addAdapter('second', 'delta-lora', deltaLoraConfig({ r: 2 }))).toThrow(
      /holds one Delta-LoRA adapter/,
    );
    expect(peft.adapterNames()).toEqual(['default']);
    expect(() => peft.addAdapter('lora', 'lora', loraConfig({ r: 2 }))).toThrow(
      /already holds a "delta-lora" adapter/,
    );
    expect(() => layer.addAdapter('x', { r: 2, alpha: 2, dropout: 0.1 })).toThrow();
  });

  it('runs the original layer, (W − D)·x, while disabled; W itself is untouched', async () => {
    const original = logitsOf(tinyGpt2(SEED));
    const peft = await trained();
    const tuned = logitsOf(peft.model);
    expect(maxAbsDiff(tuned, original)).toBeGreaterThan(1e-2);
    const weights = snapshot(peft);
    peft.withAdaptersDisabled(() => {
      expect(maxAbsDiff(logitsOf(peft.model), original)).toBeLessThan(1e-5);
    });
    expect(bitwiseEqual(logitsOf(peft.model), tuned)).toBe(true);
    for (const [name, parameter] of peft.namedTensors()) {
      expect(bitwiseEqual(parameter.value, weights.get(name)!), name).toBe(true);
    }
  });

  it('merges and unmerges on top of the moved weight', async () => {
    const peft = await trained();
    const tuned = logitsOf(peft.model);
    const moved = layers(peft).map(([, layer]) => tf.clone(layer.baseLayer.weight.value));
    peft.merge();
    expect(maxAbsDiff(logitsOf(peft.model), tuned)).toBeLessThan(1e-5);
    // Disabling a merged model unmerges first, then runs the original layers.
    peft.withAdaptersDisabled(() => {
      expect(maxAbsDiff(logitsOf(peft.model), logitsOf(tinyGpt2(SEED)))).toBeLessThan(1e-5);
    });
    peft.merge();
    peft.unmerge();
    layers(peft).forEach(([, layer], i) => {
      expect(maxAbsDiff(layer.baseLayer.weight.value, moved[i]!)).toBeLessThan(1e-6);
    });
    expect(maxAbsDiff(logitsOf(peft.model), tuned)).toBeLessThan(1e-5);
  });

  it('mergeAndUnload keeps the trained model; unload and deleteAdapter give the original back', async () => {
    const originalModel = tinyGpt2(SEED);
    const original = snapshot(originalModel);
    const originalLogits = logitsOf(originalModel);

    const merged = await trained();
    const tuned = logitsOf(merged.model);
    const plain = merged.mergeAndUnload();
    expect(maxAbsDiff(logitsOf(plain), tuned)).toBeLessThan(1e-5);
    expect([...plain.namedTensors()].some(([name]) => name.includes('lora_'))).toBe(false);

    const unloaded = await trained();
    const model = unloaded.unload();
    expect(baseWeightDrift(unloaded, original)).toBeLessThan(1e-6);
    expect(maxAbsDiff(logitsOf(model), originalLogits)).toBeLessThan(1e-5);

    const deleted = await trained();
    deleted.deleteAdapter('default');
    expect(baseWeightDrift(deleted, original)).toBeLessThan(1e-6);
  });

  it("an inactive adapter's layers run the original layer", async () => {
    const peft = await trained();
    peft.addAdapter('other', 'delta-lora', deltaLoraConfig({ r: 2, targetModules: ['c_fc'] }));
    peft.setAdapter('other'); // B = 0: a no-op until trained
    expect(maxAbsDiff(logitsOf(peft.model), logitsOf(tinyGpt2(SEED)))).toBeLessThan(1e-5);
  });

  it('is not started before the optimizer starts it, and refuses a second start', async () => {
    const peft = getLoraModel(tinyGpt2(1), { r: 2 });
    expect(peft.adapterLayers()[0]![1]).not.toBeInstanceOf(DeltaLoraLayer);
    const delta = getDeltaLoraModel(tinyGpt2(1), { r: 2 });
    const [, layer] = layers(delta)[0]!;
    expect(layer.started('default')).toBe(false);
    expect(layer.deltaState('default')).toBeNull();
    layer.start('default');
    expect(() => layer.start('default')).toThrow(/started already/);
  });
});

describe('singularValues (test support)', () => {
  it('matches hand-computed values', () => {
    expect(
      singularValues([
        [3, 0, 0],
        [0, -5, 0],
      ]),
    ).toEqual([5, 3]);
    const rankOne = singularValues([
      [1, 2],
      [2, 4],
      [3, 6],
    ]);
    expect(rankOne[0]).toBeCloseTo(Math.sqrt(70), 12);
    expect(rankOne[1]).toBeLessThan(1e-7);
    const [a, b] = singularValues([
      [2, 1],
      [1, 3],
      [0, 1],
    ]);
    expect(a).toBeCloseTo(Math.sqrt(8 + Math.sqrt(34)), 12);
    expect(b).toBeCloseTo(Math.sqrt(8 - Math.sqrt(34)), 12);
  });
});
