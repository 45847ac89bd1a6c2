// LoRA on a small GPT-2-named model built from core's modules, mirroring Hugging Face PEFT's
// tests/testing_common.py and tests/test_custom_models.py.
import '@tensorflow/tfjs-backend-cpu';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Linear, type ModulesToSaveWrapper, manualSeed, PeftModel } from '@peft/core';
import { loadAdapter, saveAdapter } from '@peft/core/node';
import {
  languageModelLoss,
  maxAbsDiff,
  parameterValues,
  ToyLM,
  tokenIds,
  toyLMWithBaseOf,
} from '@peft/testing';
import {
  expectDisablingGivesBase,
  expectGradientsOnlyFor,
  expectMergingMatchesAdapter,
  expectOnlyAdapterTensorsTrain,
  expectSafeMergeRefusesNaN,
  frozenWeightShapes,
} from '@peft/testing/assertions';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getLoraModel, LoraLayer, loraConfig, loraModelFromConfigJson } from './index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(() => manualSeed(7));

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Adapted layers on both layouts: Conv1D (c_attn, c_fc) and Linear (down_proj). */
const TARGETS = ['c_attn', 'c_fc', 'down_proj'];

describe('getLoraModel', () => {
  it('wraps the targets in place under PEFT names and trains only lora_A / lora_B', () => {
    const model = new ToyLM();
    const peft = getLoraModel(model, { r: 4, targetModules: TARGETS });
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(LoraLayer);
    expect(model.getSubmodule('transformer.h.0.attn.c_proj')).toBeInstanceOf(Linear);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toHaveLength(2 * 3 * 2);
    expect(trainable.every((n) => /\.lora_[AB]\.default\.weight$/.test(n))).toBe(true);
    expect(trainable).toContain('base_model.model.transformer.h.1.mlp.down_proj.lora_B.default.weight');
    // GPT-2's Conv1D sets fan_in_fan_out, as in PEFT (the last target decides: down_proj is Linear)
    expect(peft.adapter('default').config).toMatchObject({ fanInFanOut: false, targetModules: TARGETS });
    const gpt2 = getLoraModel(new ToyLM()).adapter('default').config;
    expect(gpt2).toMatchObject({ fanInFanOut: true, targetModules: ['c_attn'] }); // default for gpt2
  });

  it('counts parameters like get_nb_trainable_parameters and prints them like PEFT', () => {
    const d = 8;
    const model = new ToyLM({ d, layers: 2, vocab: 13 });
    const base = [...model.namedParameters()].reduce((s, [, p]) => s + p.size, 0);
    const peft = getLoraModel(model, { r: 4, targetModules: ['c_attn'] });
    const lora = 2 * (4 * d + 3 * d * 4);
    expect(peft.countParameters()).toEqual({ trainable: lora, all: base + lora });
    expect(peft.trainableParametersSummary()).toBe(
      `trainable params: ${lora} || all params: ${(base + lora).toLocaleString('en-US')} || trainable%: ${((100 * lora) / (base + lora)).toFixed(4)}`,
    );
    const lines: string[] = [];
    const log = console.log;
    console.log = (line: string) => lines.push(line);
    try {
      peft.printTrainableParameters();
    } finally {
      console.log = log;
    }
    expect(lines).toEqual([peft.trainableParametersSummary()]);
  });

  it('builds from config JSON as PEFT writes it (for the CLI)', () => {
    const model = new ToyLM();
    const peft = loraModelFromConfigJson(
      model,
      JSON.stringify({
        r: 2,
        lora_alpha: 4,
        target_modules: ['c_fc'],
        lora_dropout: 0.1,
        task_type: 'CAUSAL_LM',
      }),
    );
    expect(peft.adapter('default').config).toMatchObject({
      r: 2,
      loraAlpha: 4,
      loraDropout: 0.1,
      taskType: 'CAUSAL_LM',
    });
    expect((model.getSubmodule('transformer.h.1.mlp.c_fc') as LoraLayer).scaling('default')).toBe(2);
    expect(() => loraModelFromConfigJson(new ToyLM(), { peft_type: 'VERA', r: 2 })).toThrow(
      /"peft_type" is "VERA", expected "LORA"/,
    );
    expect(() => loraModelFromConfigJson(new ToyLM(), '{r: 2')).toThrow(/LoRA config is not valid JSON/);
  });
});

describe('merging (PEFT _test_merge_layers, _test_safe_merge, _test_merge_layers_nan)', () => {
  it('merged, unmerged and merge-and-unload outputs equal the adapter output; merged differs from base', () => {
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const base = model.forward(ids);
    const peft = getLoraModel(model, { r: 3, loraAlpha: 6, targetModules: TARGETS, initLoraWeights: false });
    expectMergingMatchesAdapter({ model, peft, ids, base, tensorPrefix: 'lora_' });
  });

  it('safe merge refuses NaN weights and changes nothing', () => {
    const model = new ToyLM().eval();
    const peft = getLoraModel(model, { r: 2, targetModules: TARGETS, initLoraWeights: false });
    const layer = model.getSubmodule('transformer.h.1.mlp.down_proj') as LoraLayer;
    const b = layer.loraB.get('default')!.weight;
    b.assign(tf.fill(b.shape, Number.NaN));
    expectSafeMergeRefusesNaN({ model, peft, tensorPrefix: 'lora_' }, 'transformer.h.1.mlp.down_proj');
  });
});

describe('disabling (PEFT _test_disable_adapter, test_disable_adapters_with_merging)', () => {
  it('a fresh adapter is the identity; disabled gives exactly the base output; re-enabled the adapter output', () => {
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const base = model.forward(ids);
    const peft = getLoraModel(model, { targetModules: TARGETS });
    expect(maxAbsDiff(model.forward(ids), base)).toBe(0); // B = 0
    for (const [, layer] of peft.adapterLayers()) {
      const b = (layer as LoraLayer).loraB.get('default')!.weight;
      b.assign(tf.randomNormal(b.shape, 0, 0.5, 'float32', 3));
    }
    expectDisablingGivesBase({ model, peft, ids, base, tensorPrefix: 'lora_' });
  });
});

describe('named adapters', () => {
  it('holds several adapters, switches between them, deletes one', () => {
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const peft = getLoraModel(model, { r: 2, targetModules: ['c_attn'], initLoraWeights: false });
    const first = model.forward(ids);
    peft.addAdapter(
      'other',
      'lora',
      loraConfig({ r: 4, targetModules: ['c_attn', 'down_proj'], initLoraWeights: false }),
    );
    expect(maxAbsDiff(model.forward(ids), first)).toBe(0);
    peft.setAdapter('other');
    const second = model.forward(ids);
    expect(maxAbsDiff(second, first)).toBeGreaterThan(1e-3);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable.every((n) => n.includes('.other.'))).toBe(true);
    expect(trainable).toHaveLength(2 * 2 * 2);
    peft.setAdapter('default');
    expect(maxAbsDiff(model.forward(ids), first)).toBe(0);
    peft.deleteAdapter('other');
    expect(model.getSubmodule('transformer.h.0.mlp.down_proj')).toBeInstanceOf(Linear);
    expect(peft.adapterNames()).toEqual(['default']);
  });
});

describe('training (PEFT _test_training, test_only_params_are_updated)', () => {
  it('only lora_A / lora_B and modules_to_save change; base weights stay bit-identical', async () => {
    const model = new ToyLM();
    const peft = getLoraModel(model, {
      r: 2,
      targetModules: TARGETS,
      modulesToSave: ['lm_head'],
      loraDropout: 0.1,
    });
    await expectOnlyAdapterTensorsTrain({ model, peft }, '.lora_', 2 * 3 * 2 + 1);
  });

  it('takes gradients of the lora tensors only, and runs no gradient kernel for frozen weights', async () => {
    const model = new ToyLM();
    const peft = getLoraModel(model, { r: 3, targetModules: TARGETS, initLoraWeights: false });
    const ids = tokenIds(); // loss on [2, 5] positions: no activation is shaped like a weight matrix
    expectGradientsOnlyFor({ model, peft }, ids, /\.lora_[AB]\./);

    // A weight gradient is a kernel whose output has the weight's shape: count them on the tape.
    const frozenShapes = frozenWeightShapes(peft);
    const weightGradientKernels = async () => {
      const info = await tf.profile(() => {
        const result = tf.variableGrads(() => languageModelLoss(model, ids));
        return [result.value, ...Object.values(result.grads)];
      });
      tf.dispose(info.result as tf.Tensor[]);
      // (Identity kernels only alias their input: tfjs records one per tensor a recorded op reads.)
      return info.kernels.filter(
        (k) => k.name !== 'Identity' && k.outputShapes.some((s) => s && frozenShapes.includes(s.join('x'))),
      ).length;
    };
    expect(await weightGradientKernels()).toBe(0);
    // The check can see them: with every weight trainable, base weight gradients are computed.
    for (const parameter of peft.parameters()) parameter.requiresGrad = true;
    expect(await weightGradientKernels()).toBeGreaterThanOrEqual(frozenShapes.length);
  });
});

describe('saving and loading (PEFT _test_save_pretrained, test_save_load_roundtrip)', () => {
  it('writes adapter_config.json and adapter_model.safetensors only, and loads back identical outputs', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lora-'));
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const peft = getLoraModel(model, {
      r: 3,
      loraAlpha: 5,
      targetModules: TARGETS,
      initLoraWeights: false,
      modulesToSave: ['lm_head'],
    });
    ((model.getSubmodule('lm_head') as ModulesToSaveWrapper).copies.get('default') as Linear).weight.assign(
      tf.randomNormal([13, 8], 0, 1, 'float32', 5),
    );
    peft.addAdapter(
      'extra',
      'lora',
      loraConfig({ r: 2, targetModules: ['c_fc'], initLoraWeights: false, useRslora: true }),
    );
    const outputs = new Map<string, tf.Tensor>();
    for (const name of ['default', 'extra']) {
      peft.setAdapter(name);
      outputs.set(name, model.forward(ids));
    }
    await saveAdapter(peft, dir);
    for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'extra/adapter_config.json']) {
      expect(existsSync(join(dir, file)), file).toBe(true);
    }
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    expect(existsSync(join(dir, 'config.json'))).toBe(false);
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      peft_type: 'LORA',
      r: 3,
      lora_alpha: 5,
      inference_mode: true,
      fan_in_fan_out: false,
    });
    expect(json).toHaveProperty('base_model_name_or_path');

    const fresh = toyLMWithBaseOf(model, 'lora_');
    const loaded = await loadAdapter(fresh, dir);
    await loadAdapter(loaded, join(dir, 'extra'), { adapterName: 'extra' });
    for (const [name, expected] of outputs) {
      loaded.setAdapter(name);
      expect(maxAbsDiff(fresh.forward(ids), expected), name).toBe(0);
    }
    const original = parameterValues(peft, (n) => n.includes('lora_') || n.includes('modules_to_save'));
    const reloaded = parameterValues(loaded, (n) => n.includes('lora_') || n.includes('modules_to_save'));
    expect(reloaded).toEqual(original);
  });

  it('refuses adapters that do not fit, configs of another type, targets that match nothing; nothing is half-applied', async () => {
    dir = await mkdtemp(join(tmpdir(), 'lora-'));
    const peft = getLoraModel(new ToyLM({ d: 8 }), { r: 2, targetModules: TARGETS });
    await saveAdapter(peft, dir);
    const other = new ToyLM({ d: 6 });
    const names = [...other.namedParameters()].map(([n]) => n);
    const before = tf.memory().numTensors;
    await expect(loadAdapter(other, dir)).rejects.toThrow(
      /cannot load the LORA adapter: .*lora_A.*shape \[2,8\] does not match the model's \[2,6\]/,
    );
    expect([...other.namedParameters()].map(([n]) => n)).toEqual(names);
    expect(tf.memory().numTensors).toBe(before);

    expect(() => getLoraModel(other, { targetModules: ['q_proj'] })).toThrow(
      /target modules \[q_proj\] not found in the base model; linear layers include: transformer\.h\.0\.attn\.c_attn/,
    );
    expect(() => getLoraModel(other, { r: 0 })).toThrow(/field "r" must be a positive integer \(got 0\)/);
    expect(() =>
      getLoraModel(other, { targetModules: ['c_attn'], rankPattern: { 'h.1.attn.c_attn': -1 } }),
    ).toThrow(/rank_pattern/);
    expect(() => loraModelFromConfigJson(other, { peft_type: 'PREFIX_TUNING' })).toThrow(
      /"peft_type" is "PREFIX_TUNING", expected "LORA"/,
    );
    // Raw configs given to core directly are completed and validated too.
    expect(() => new PeftModel(other).addAdapter('default', 'lora', { r: -3 })).toThrow(
      /field "r" must be a positive integer/,
    );
    expect([...other.namedParameters()].map(([n]) => n)).toEqual(names);
    expect(tf.memory().numTensors).toBe(before);
  });
});
