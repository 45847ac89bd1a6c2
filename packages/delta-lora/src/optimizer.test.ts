// Training with DeltaLoraOptimizer: equal to LoRA before the start step, W moves by the telescoping
// low-rank updates after it, W has no gradient and no optimizer state, checkpoints resume exactly.
import { AdamW, getPeftModel, measureMemory, type PeftModel, Trainer, weightDecayGroups } from '@peft/core';
import { getLoraModel } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DeltaLoraConfigInput, deltaLoraConfig } from './config.js';
import { deltaLoraMethod, getDeltaLoraModel } from './index.js';
import type { DeltaLoraLayer } from './layer.js';
import { createOptimizer, DeltaLoraOptimizer } from './optimizer.js';
import {
  batches,
  bitwiseEqual,
  logitsOf,
  singularValues,
  snapshot,
  subtract,
  tinyGpt2,
  tinyLlama,
  toFloat64Rows,
} from './test_models.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const MODELS = { gpt2: tinyGpt2, llama: tinyLlama } as const;
const LR = 0.05;

function deltaModel(kind: keyof typeof MODELS, config: DeltaLoraConfigInput): PeftModel<CausalLM> {
  const model: CausalLM = MODELS[kind](7);
  return getDeltaLoraModel(model, { r: 2, loraAlpha: 4, initLoraWeights: 'gaussian', ...config });
}

function trainer(peft: PeftModel<CausalLM>, optimizer = createOptimizer(peft, { lr: LR })) {
  return new Trainer({ module: peft, loss: (ids: number[][]) => causalLMLoss(peft.model, ids), optimizer });
}

function deltaLayers(peft: PeftModel): [string, DeltaLoraLayer][] {
  return peft.adapterLayers() as [string, DeltaLoraLayer][];
}

describe('DeltaLoraOptimizer', () => {
  for (const kind of ['gpt2', 'llama'] as const) {
    it(`${kind}: with the start step beyond the last step, training equals LoRA's bit for bit`, async () => {
      const steps = 4;
      const model = MODELS[kind](7);
      const lora = getLoraModel(model, { r: 2, loraAlpha: 4, initLoraWeights: 'gaussian' });
      const loraTrainer = new Trainer({
        module: lora,
        loss: (ids: number[][]) => causalLMLoss(model, ids),
        optimizer: new AdamW(weightDecayGroups(lora), { lr: LR }),
      });
      await loraTrainer.train(batches(100, steps));

      const delta = deltaModel(kind, { updateStartSteps: steps });
      const before = snapshot(delta.model);
      await trainer(delta).train(batches(100, steps));

      expect(bitwiseEqual(logitsOf(delta.model), logitsOf(model))).toBe(true);
      const loraTensors = new Map([...lora.namedTensors()].map(([name, p]) => [name, p.value]));
      let compared = 0;
      for (const [name, parameter] of delta.namedTensors()) {
        const other = loraTensors.get(name);
        if (!other) continue;
        expect(bitwiseEqual(parameter.value, other), name).toBe(true);
        compared++;
      }
      expect(compared).toBe(loraTensors.size);
      // No base weight moved; the adapter reached step K = 4 < K+1, so no snapshot yet.
      for (const [name, parameter] of delta.model.namedTensors()) {
        if (name.includes('.lora_')) continue;
        expect(bitwiseEqual(parameter.value, before.get(name)!), name).toBe(true);
      }
      for (const [, layer] of deltaLayers(delta)) expect(layer.started('default')).toBe(false);
      expect((delta.adapter('default').config as { stepsTaken: number }).stepsTaken).toBe(steps);
    });
  }

  for (const kind of ['gpt2', 'llama'] as const) {
    it(`${kind}: after training, each W changed by a matrix of rank <= 2r equal to the telescoped formula`, async () => {
      const r = 2;
      const peft = deltaModel(kind, { r, updateStartSteps: 1, deltaUpdateRatio: 2 });
      const before = snapshot(peft.model);
      await trainer(peft).train(batches(200, 6));
      const layers = deltaLayers(peft);
      expect(layers.length).toBeGreaterThan(0);
      for (const [path, layer] of layers) {
        const w = layer.baseLayer.weight.value;
        const w0 = before.get(`${path}.base_layer.weight`)!;
        const change = subtract(toFloat64Rows(w), toFloat64Rows(w0));
        const sigma = singularValues(change);
        expect(sigma[0]!, `${path} moved`).toBeGreaterThan(1e-3);
        // rank <= 2r: every singular value past the 2r-th is float32 rounding noise.
        for (const value of sigma.slice(2 * r)) expect(value / sigma[0]!, path).toBeLessThan(1e-5);
        expect(sigma[2 * r - 1]! / sigma[0]!, `${path} uses both halves`).toBeGreaterThan(1e-4);
        // W_T − W_0 = D = λ·s·(B_T A_T − B_{K+1} A_{K+1}).
        const telescoped = layer.telescopedDelta('default', 2);
        const tolerance = 1e-5 * sigma[0]!;
        expect(maxAbsDiff(tf.sub(w, w0), telescoped), path).toBeLessThan(tolerance);
        expect(maxAbsDiff(layer.deltaState('default')!.weightDelta, telescoped), path).toBeLessThan(
          tolerance,
        );
      }
    });
  }

  it('moves W by exactly λ·s·(B_{t+1}A_{t+1} − B_t A_t) per step, from step K+2 on', async () => {
    const peft = deltaModel('gpt2', { updateStartSteps: 2, deltaUpdateRatio: 3, useRslora: true });
    const optimizer = createOptimizer(peft, { lr: LR });
    const run = trainer(peft, optimizer);
    const data = batches(300, 5);
    const [path, layer] = deltaLayers(peft)[0]!;
    const w0 = tf.clone(layer.baseLayer.weight.value);
    await run.trainStep(data[0]!);
    await run.trainStep(data[1]!);
    expect(layer.started('default')).toBe(false);
    await run.trainStep(data[2]!); // t = 2 = K: A_3, B_3 are the start snapshot, W has not moved
    expect(layer.started('default')).toBe(true);
    expect(bitwiseEqual(layer.baseLayer.weight.value, w0)).toBe(true);
    const state = layer.deltaState('default')!;
    expect(bitwiseEqual(state.aStart, layer.loraA.get('default')!.weight.value)).toBe(true);
    expect(bitwiseEqual(state.bStart, layer.loraB.get('default')!.weight.value)).toBe(true);
    expect(bitwiseEqual(state.weightDelta, tf.zerosLike(w0))).toBe(true);

    const old = layer.factors('default');
    const wBefore = tf.clone(layer.baseLayer.weight.value);
    await run.trainStep(data[3]!); // t = 3 > K: W moves
    const a = layer.loraA.get('default')!.weight.value;
    const b = layer.loraB.get('default')!.weight.value;
    const s = layer.scaling('default');
    expect(s).toBeCloseTo(4 / Math.sqrt(2), 12);
    // Conv1D layout: W is [in, out], the LoRA product [out, in] is transposed.
    const expected = tf.transpose(tf.mul(tf.sub(tf.matMul(b, a), tf.matMul(old.b, old.a)), 3 * s));
    const moved = tf.sub(layer.baseLayer.weight.value, wBefore);
    expect(maxAbsDiff(moved, expected), path).toBeLessThan(
      1e-6 * tf.max(tf.abs(expected)).dataSync()[0]! + 1e-7,
    );
    expect(maxAbsDiff(layer.deltaState('default')!.weightDelta, moved)).toBeLessThan(1e-7);
    expect(optimizer.stepCount).toBe(4);
    tf.dispose([old.a, old.b, wBefore, w0, expected, moved]);
    // A step past the start leaves no tensor behind.
    const live = tf.memory().numTensors;
    await run.trainStep(data[4]!);
    expect(tf.memory().numTensors).toBe(live);
  });

  it('gives W no gradient and no optimizer state', async () => {
    const peft = deltaModel('gpt2', { updateStartSteps: 0 });
    const optimizer = createOptimizer(peft, { lr: LR });
    const managed = new Set(optimizer.parameters());
    const baseWeights = deltaLayers(peft).map(([, layer]) => layer.baseLayer.weight);
    for (const weight of baseWeights) {
      expect(weight.requiresGrad).toBe(false);
      expect(managed.has(weight)).toBe(false);
    }
    // The trainable parameters are exactly LoRA's A and B.
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([name]) => name);
    expect(trainable.every((name) => /\.lora_[AB]\.default\.weight$/.test(name))).toBe(true);
    expect([...managed]).toHaveLength(trainable.length);
    // Gradients: only for the trainable variables.
    const { grads } = tf.variableGrads(() => causalLMLoss(peft.model, batches(1, 1)[0]!));
    const gradded = new Set(Object.keys(grads));
    for (const weight of baseWeights) expect(gradded.has(weight.variable.name)).toBe(false);
    expect(gradded.size).toBe(trainable.length);
    tf.dispose(Object.values(grads));

    await trainer(peft, optimizer).train(batches(400, 3));
    expect(deltaLayers(peft)[0]![1].started('default')).toBe(true);
    // The moments are the inner AdamW's, for A and B only: as many bytes as LoRA's optimizer.
    const loraPeft = getLoraModel(tinyGpt2(7), { r: 2, loraAlpha: 4 });
    const loraOptimizer = new AdamW(weightDecayGroups(loraPeft), { lr: LR });
    expect(optimizer.stateBytes()).toBe(loraOptimizer.stateBytes());
    expect(optimizer.stateBytes()).toBe(optimizer.inner.stateBytes());
    const innerNames = [...optimizer.inner.getState().tensors.keys()];
    expect(innerNames.some((name) => name.includes('base_layer'))).toBe(false);
    expect(measureMemory(peft, optimizer).optimizerBytes).toBe(loraOptimizer.stateBytes());
  });

  it('resumes a Trainer state, base weights included (W to float32 rounding: W_0 + D, not the step-by-step sum)', async () => {
    const data = batches(500, 7);
    const config = { updateStartSteps: 1 };
    const first = deltaModel('llama', config);
    const firstTrainer = trainer(first);
    await firstTrainer.train(data.slice(0, 4));
    const state = firstTrainer.getTrainingState();
    const saved = {
      ...state,
      parameters: new Map([...state.parameters].map(([k, v]) => [k, tf.clone(v)])),
      optimizer: {
        tensors: new Map([...state.optimizer.tensors].map(([k, v]) => [k, tf.clone(v)])),
        scalars: { ...state.optimizer.scalars },
      },
    };
    expect(saved.optimizer.scalars['delta_lora.steps_taken']).toBe(4);
    expect([...saved.optimizer.tensors.keys()].some((k) => k.endsWith('.lora_weight_delta.default'))).toBe(
      true,
    );
    await firstTrainer.train(data.slice(4));

    const second = deltaModel('llama', config); // a fresh model: original weights, new adapter
    const secondTrainer = trainer(second);
    secondTrainer.setTrainingState(saved);
    await secondTrainer.train(data.slice(4));
    expect(maxAbsDiff(logitsOf(second.model), logitsOf(first.model))).toBeLessThan(1e-5);
    const firstTensors = new Map([...first.namedTensors()].map(([k, p]) => [k, p.value]));
    for (const [name, parameter] of second.namedTensors()) {
      expect(maxAbsDiff(parameter.value, firstTensors.get(name)!), name).toBeLessThan(1e-6);
    }
    // Without restoring the state, the runs differ clearly: the check above has teeth.
    const third = deltaModel('llama', config);
    await trainer(third).train(data.slice(4));
    expect(maxAbsDiff(logitsOf(third.model), logitsOf(first.model))).toBeGreaterThan(1e-3);
  });

  it('refuses a state that does not fit and changes nothing', async () => {
    const peft = deltaModel('gpt2', { updateStartSteps: 0 });
    const optimizer = createOptimizer(peft, { lr: LR });
    await trainer(peft, optimizer).train(batches(600, 2));
    const state = optimizer.getState();
    const weights = snapshot(peft);
    const without = { tensors: state.tensors, scalars: { ...state.scalars } };
    delete without.scalars['delta_lora.steps_taken'];
    expect(() => optimizer.setState(without)).toThrow(/delta_lora\.steps_taken/);
    const missing = new Map(state.tensors);
    const deltaKey = [...missing.keys()].find((k) => k.includes('lora_weight_delta'))!;
    missing.delete(deltaKey);
    expect(() => optimizer.setState({ tensors: missing, scalars: state.scalars })).toThrow(/missing tensor/);
    for (const [name, parameter] of peft.namedTensors()) {
      expect(bitwiseEqual(parameter.value, weights.get(name)!), name).toBe(true);
    }
  });

  it('refuses to step while merged, and needs a Delta-LoRA adapter', async () => {
    const peft = deltaModel('gpt2', { updateStartSteps: 0 });
    const optimizer = createOptimizer(peft, { lr: LR });
    peft.merge();
    expect(() => optimizer.step(new Map())).toThrow(/is merged; unmerge first/);
    peft.unmerge();
    const lora = getLoraModel(tinyGpt2(1), { r: 2 });
    expect(() => new DeltaLoraOptimizer(lora, new AdamW(lora.namedParameters()))).toThrow(/not delta-lora/);
  });

  it('is what the registry hands a generic train command', () => {
    const peft = getPeftModel(tinyGpt2(3), 'delta-lora', deltaLoraConfig({ r: 2 }));
    expect(peft.adapter('default').method).toBe(deltaLoraMethod);
    expect(createOptimizer(peft)).toBeInstanceOf(DeltaLoraOptimizer);
  });
});
