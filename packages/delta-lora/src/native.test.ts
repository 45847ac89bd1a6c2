// The native form (`peft_type: "DELTA_LORA"`), written and read by core's generic saveAdapter /
// loadAdapter: LoRA tensors, the start snapshot and the accumulated change of each base weight, and
// the step count, so that training continues where it stopped.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  adapterFiles,
  loadAdapterFiles,
  type PeftModel,
  readSafetensors,
  Trainer,
  writeSafetensors,
} from '@peft/core';
import { loadAdapter, saveAdapter } from '@peft/core/node';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeltaLoraConfig, type DeltaLoraConfigInput, deltaLoraConfig } from './config.js';
import { getDeltaLoraModel } from './index.js';
import type { DeltaLoraLayer } from './layer.js';
import { saveAsLoraAdapter } from './node.js';
import { createOptimizer } from './optimizer.js';
import { batches, bitwiseEqual, logitsOf, snapshot, tinyGpt2 } from './test_models.test-support.js';

const SEED = 9;
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'delta-lora-'));
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function train(peft: PeftModel<CausalLM>, data: number[][][]): Promise<void> {
  const trainer = new Trainer({
    module: peft,
    loss: (ids: number[][]) => causalLMLoss(peft.model, ids),
    optimizer: createOptimizer(peft, { lr: 0.05 }),
  });
  await trainer.train(data);
  peft.eval();
}

const CONFIG: DeltaLoraConfigInput = { r: 2, loraAlpha: 4, updateStartSteps: 2, taskType: 'CAUSAL_LM' };

describe('the native Delta-LoRA adapter', () => {
  it('is saved by saveAdapter with the start snapshot, the accumulated change of W and the step count', async () => {
    const peft = getDeltaLoraModel(tinyGpt2(SEED), CONFIG);
    await train(peft, batches(900, 5));
    const dir = tempDir();
    await saveAdapter(peft, dir);
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'DELTA_LORA',
      r: 2,
      lora_alpha: 4,
      fan_in_fan_out: true,
      target_modules: ['c_attn'],
      delta_update_ratio: 2,
      update_start_steps: 2,
      steps_taken: 5,
      inference_mode: true,
    });
    const { tensors, metadata } = readSafetensors(readFileSync(join(dir, 'adapter_model.safetensors')));
    expect(metadata).toEqual({ format: 'pt' });
    const shapes = Object.fromEntries([...tensors].map(([key, t]) => [key, t.shape]));
    const layer = 'base_model.model.transformer.h.0.attn.c_attn';
    expect(shapes).toMatchObject({
      [`${layer}.lora_A.weight`]: [2, 16],
      [`${layer}.lora_B.weight`]: [48, 2],
      [`${layer}.lora_A_start`]: [2, 16],
      [`${layer}.lora_B_start`]: [48, 2],
      [`${layer}.lora_weight_delta`]: [16, 48], // Conv1D layout, as the base weight
    });
    expect(Object.keys(shapes)).toHaveLength(10);
  });

  it('loads onto the original model as the trained model, and training continues alike', async () => {
    const data = batches(1000, 8);
    const peft = getDeltaLoraModel(tinyGpt2(SEED), CONFIG);
    await train(peft, data.slice(0, 5));
    const dir = tempDir();
    await saveAdapter(peft, dir);

    const loaded = await loadAdapter(tinyGpt2(SEED), dir);
    loaded.eval();
    expect(maxAbsDiff(logitsOf(loaded.model), logitsOf(peft.model))).toBeLessThan(1e-6);
    const trainedLayers = peft.adapterLayers() as [string, DeltaLoraLayer][];
    (loaded.adapterLayers() as [string, DeltaLoraLayer][]).forEach(([path, layer], i) => {
      const [, original] = trainedLayers[i]!;
      expect(layer.started('default'), path).toBe(true);
      // W = W_0 + D (one rounding) against the step-by-step sum.
      expect(maxAbsDiff(layer.baseLayer.weight.value, original.baseLayer.weight.value), path).toBeLessThan(
        1e-6,
      );
      expect(
        bitwiseEqual(layer.deltaState('default')!.weightDelta, original.deltaState('default')!.weightDelta),
      ).toBe(true);
    });

    // Both continue with a new optimizer (AdamW's moments are not part of an adapter).
    await train(peft, data.slice(5));
    await train(loaded, data.slice(5));
    expect((loaded.adapter('default').config as DeltaLoraConfig).stepsTaken).toBe(8);
    expect(maxAbsDiff(logitsOf(loaded.model), logitsOf(peft.model))).toBeLessThan(1e-5);
  });

  it('saved before its start step, starts at the same step after loading', async () => {
    const data = batches(1100, 7);
    const config = { ...CONFIG, updateStartSteps: 3 };
    const peft = getDeltaLoraModel(tinyGpt2(SEED), config);
    await train(peft, data.slice(0, 2));
    const files = await adapterFiles(peft);
    expect(JSON.parse(files.config).steps_taken).toBe(2);
    expect(
      [...readSafetensors(files.weights).tensors.keys()].every((k) => /lora_[AB]\.weight$/.test(k)),
    ).toBe(true);

    const loaded = loadAdapterFiles(tinyGpt2(SEED) as CausalLM, files);
    await train(peft, data.slice(2));
    await train(loaded, data.slice(2));
    // W stayed W_0 until now, so the two runs are the same computation.
    expect(bitwiseEqual(logitsOf(loaded.model), logitsOf(peft.model))).toBe(true);
    const layer = loaded.adapterLayers()[0]![1] as DeltaLoraLayer;
    expect(layer.started('default')).toBe(true);
  });

  it('is loaded all or nothing', async () => {
    const peft = getDeltaLoraModel(tinyGpt2(SEED), CONFIG);
    await train(peft, batches(1200, 4));
    const files = await adapterFiles(peft);
    const { tensors } = readSafetensors(files.weights);
    const key = [...tensors.keys()].find((k) => k.endsWith('h.1.attn.c_attn.lora_weight_delta'))!;
    tensors.delete(key);
    const broken = writeSafetensors(tensors, { format: 'pt' });
    const target = tinyGpt2(SEED);
    const before = snapshot(target);
    expect(() => loadAdapterFiles(target as CausalLM, { config: files.config, weights: broken })).toThrow(
      /missing tensor ".*lora_weight_delta"/,
    );
    for (const [name, parameter] of target.namedTensors()) {
      expect(bitwiseEqual(parameter.value, before.get(name)!), name).toBe(true);
    }
  });

  it('saveAsLoraAdapter writes LoRA folders as PEFT lays them out, for the original model', async () => {
    const peft = getDeltaLoraModel(tinyGpt2(SEED), CONFIG);
    peft.addAdapter(
      'mlp',
      'delta-lora',
      deltaLoraConfig({ r: 1, targetModules: ['c_fc'], updateStartSteps: 0 }),
    );
    await train(peft, batches(1300, 4));
    const dir = tempDir();
    const folders = await saveAsLoraAdapter(peft, dir, { baseModelNameOrPath: 'tiny' });
    expect(folders).toEqual([dir, join(dir, 'mlp')]);
    const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 4, base_model_name_or_path: 'tiny' });
    // 'mlp' never trained (the active adapter did): not started, so its plain rank-1 LoRA adapter.
    expect(JSON.parse(readFileSync(join(dir, 'mlp', 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 1 });
    const loaded = await loadAdapter(tinyGpt2(SEED), dir);
    loaded.eval();
    expect(maxAbsDiff(logitsOf(loaded.model), logitsOf(peft.model))).toBeLessThan(1e-5);
  });
});
