// VeRA on a small GPT-2-named model with layers of several sizes, mirroring Hugging Face PEFT's
// tests/test_vera.py, tests/testing_common.py, tests/test_custom_models.py and test_initialization.py.
import '@tensorflow/tfjs-backend-cpu';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getPeftMethod, Linear, manualSeed, type PeftModel, readSafetensorsAsTensors } from '@peft/core';
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
import {
  drawProjections,
  getVeraModel,
  type SharedProjection,
  VeraLayer,
  veraConfig,
  veraMethod,
  veraModelFromConfigJson,
} from './index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(() => manualSeed(7));

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Layers of four sizes (d=8): c_attn 8→24, c_proj 8→8 and 32→8, c_fc 8→32 (Conv1D); down_proj 8→8 (Linear). */
const TARGETS = ['c_attn', 'c_proj', 'c_fc', 'down_proj'];

function veraLayers(peft: PeftModel): [string, VeraLayer][] {
  return peft.adapterLayers() as [string, VeraLayer][];
}

function shared(peft: PeftModel, key: 'vera_A' | 'vera_B'): SharedProjection {
  return peft.getSubmodule(`base_model.${key}`) as SharedProjection;
}

/** Give every λ_b a non-zero value (as training would), so that the adapter is not the identity. */
function perturb(peft: PeftModel, name = 'default', seed = 3): void {
  for (const [, layer] of veraLayers(peft)) {
    const lambdaB = layer.veraLambdaB.get(name);
    if (lambdaB) lambdaB.assign(tf.randomNormal(lambdaB.shape, 0, 0.5, 'float32', seed++));
  }
}

describe('getVeraModel', () => {
  it('wraps the targets in place under PEFT names; only vera_lambda_b / vera_lambda_d train', () => {
    const model = new ToyLM();
    const peft = getVeraModel(model, { r: 4, targetModules: TARGETS });
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(VeraLayer);
    expect(model.getSubmodule('lm_head')).toBeInstanceOf(Linear);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toHaveLength(2 * 5 * 2);
    expect(trainable.every((n) => /\.vera_lambda_[bd]\.default$/.test(n))).toBe(true);
    expect(trainable).toContain('base_model.model.transformer.h.1.mlp.down_proj.vera_lambda_d.default');
    // The projections are frozen buffers of base_model, not parameters.
    const buffers = [...peft.namedBuffers()].map(([n, p]) => [n, p.shape, p.requiresGrad]);
    expect(buffers).toEqual([
      ['base_model.vera_A.default', [4, 32], false],
      ['base_model.vera_B.default', [32, 4], false],
    ]);
    // GPT-2's Conv1D sets fan_in_fan_out, as in PEFT (the last wrapped layer decides: down_proj is Linear)
    expect(peft.adapter('default').config).toMatchObject({ fanInFanOut: false, targetModules: TARGETS });
    const gpt2 = getVeraModel(new ToyLM(), { r: 4 }).adapter('default').config;
    expect(gpt2).toMatchObject({ fanInFanOut: true, targetModules: ['c_attn'] }); // default for gpt2
    expect(getPeftMethod('vera')).toBe(veraMethod);
  });

  it('counts trainable parameters as the sum over layers of (out + r), the projections not at all', () => {
    const d = 8;
    const r = 4;
    const model = new ToyLM({ d, layers: 2 });
    const base = [...model.namedParameters()].reduce((s, [, p]) => s + p.size, 0);
    const peft = getVeraModel(model, { r, targetModules: TARGETS });
    const outs = [3 * d, d, 4 * d, d, d]; // c_attn, attn.c_proj, c_fc, mlp.c_proj, down_proj
    const vera = 2 * outs.reduce((s, out) => s + out + r, 0);
    expect(peft.countParameters()).toEqual({ trainable: vera, all: base + vera });
    expect(peft.trainableParametersSummary()).toBe(
      `trainable params: ${vera} || all params: ${(base + vera).toLocaleString('en-US')} || trainable%: ${((100 * vera) / (base + vera)).toFixed(4)}`,
    );
  });

  it('builds from config JSON as PEFT writes it (for the CLI)', () => {
    const model = new ToyLM();
    const peft = veraModelFromConfigJson(
      model,
      JSON.stringify({ r: 2, target_modules: ['c_fc'], vera_dropout: 0.1, projection_prng_key: 5 }),
    );
    expect(peft.adapter('default').config).toMatchObject({ r: 2, veraDropout: 0.1, projectionPrngKey: 5 });
    expect((model.getSubmodule('transformer.h.1.mlp.c_fc') as VeraLayer).rank('default')).toBe(2);
    expect(() => veraModelFromConfigJson(new ToyLM(), { peft_type: 'LORA', r: 2 })).toThrow(
      /"peft_type" is "LORA", expected "VERA"/,
    );
    expect(() => veraModelFromConfigJson(new ToyLM(), '{r: 2')).toThrow(/VeRA config is not valid JSON/);
  });
});

describe('shared projections (PEFT test_vera.py)', () => {
  it('stores vera_A and vera_B once, as one tensor each, used by every layer; the lambdas are per layer', () => {
    const model = new ToyLM();
    const before = tf.memory();
    const peft = getVeraModel(model, { r: 4, targetModules: TARGETS });
    const a = shared(peft, 'vera_A').get('default')!;
    const b = shared(peft, 'vera_B').get('default')!;
    const layers = veraLayers(peft);
    expect(layers).toHaveLength(10);
    for (const [, layer] of layers) {
      expect(layer.projections('default').a).toBe(a);
      expect(layer.projections('default').b).toBe(b);
    }
    const lambdas = layers.map(([, l]) => l.veraLambdaB.get('default'));
    expect(new Set(lambdas).size).toBe(layers.length);
    expect(new Set(layers.map(([, l]) => l.veraLambdaD.get('default'))).size).toBe(layers.length);
    // Memory: one A [4, 32] and one B [32, 4], plus the vectors; nothing per layer beyond them.
    const after = tf.memory();
    const vectors = 2 * [24, 8, 32, 8, 8].reduce((s, out) => s + out + 4, 0);
    expect(after.numBytes - before.numBytes).toBe(4 * (4 * 32 + 32 * 4 + vectors));
    expect(after.numDataBuffers - before.numDataBuffers).toBe(2 + 2 * layers.length);
  });

  it('sizes A [r, max_in] and B [max_out, r] over the wrapped layers; each layer uses its top-left slice', () => {
    const peft = getVeraModel(new ToyLM({ d: 8 }), { r: 3, targetModules: ['c_attn', 'c_proj'] });
    // c_attn 8→24, attn.c_proj 8→8, mlp.c_proj 32→8: max_in 32, max_out 24
    expect(shared(peft, 'vera_A').get('default')!.shape).toEqual([3, 32]);
    expect(shared(peft, 'vera_B').get('default')!.shape).toEqual([24, 3]);
    const a = shared(peft, 'vera_A').get('default')!.value;
    const b = shared(peft, 'vera_B').get('default')!.value;
    const shapes = veraLayers(peft).map(([name, layer]) => {
      const { a: aS, b: bS } = layer.slicedProjections('default');
      expect(maxAbsDiff(aS, tf.slice(a, [0, 0], aS.shape))).toBe(0);
      expect(maxAbsDiff(bS, tf.slice(b, [0, 0], bS.shape))).toBe(0);
      return [name.replace('transformer.h.', ''), aS.shape, bS.shape];
    });
    expect(shapes).toEqual([
      ['0.attn.c_attn', [3, 8], [24, 3]],
      ['0.attn.c_proj', [3, 8], [8, 3]],
      ['0.mlp.c_proj', [3, 32], [8, 3]],
      ['1.attn.c_attn', [3, 8], [24, 3]],
      ['1.attn.c_proj', [3, 8], [8, 3]],
      ['1.mlp.c_proj', [3, 32], [8, 3]],
    ]);
  });

  it('draws the projections from projection_prng_key, kaiming-uniform with gain sqrt(2)', () => {
    const peft = getVeraModel(new ToyLM(), { r: 16, targetModules: ['c_fc'], projectionPrngKey: 11 });
    const a = shared(peft, 'vera_A').get('default')!.value;
    const b = shared(peft, 'vera_B').get('default')!.value;
    const drawn = drawProjections(11, 16, 8, 32);
    expect(maxAbsDiff(a, drawn.a)).toBe(0);
    expect(maxAbsDiff(b, drawn.b)).toBe(0);
    // Independent of the global seed, different for another key.
    manualSeed(99);
    const again = getVeraModel(new ToyLM(), { r: 16, targetModules: ['c_fc'], projectionPrngKey: 11 });
    expect(maxAbsDiff(shared(again, 'vera_A').get('default')!.value, a)).toBe(0);
    const other = getVeraModel(new ToyLM(), { r: 16, targetModules: ['c_fc'], projectionPrngKey: 12 });
    expect(maxAbsDiff(shared(other, 'vera_A').get('default')!.value, a)).toBeGreaterThan(0);
    // U(±sqrt(6 / fan_in)): fan_in is max_in for A, r for B; a=0, not LoRA's a=sqrt(5).
    const max = (t: tf.Tensor) => tf.max(tf.abs(t)).dataSync()[0]!;
    expect(max(a)).toBeLessThanOrEqual(Math.sqrt(6 / 8));
    expect(max(a)).toBeGreaterThan(0.9 * Math.sqrt(6 / 8));
    expect(max(b)).toBeLessThanOrEqual(Math.sqrt(6 / 16));
    expect(max(b)).toBeGreaterThan(0.9 * Math.sqrt(6 / 16));
  });

  it("a second adapter must share the key and save_projection, fit the projections and have the first's rank", () => {
    const model = new ToyLM().eval();
    const peft = getVeraModel(model, { r: 4, targetModules: ['c_attn', 'down_proj'] });
    const names = [...peft.namedTensors()].map(([n]) => n);
    const memory = tf.memory().numTensors;
    const refused: [Parameters<typeof veraConfig>[0], RegExp][] = [
      [{ r: 4, targetModules: ['c_attn'], projectionPrngKey: 1 }, /PRNG initialisation key must be the same/],
      [{ r: 4, targetModules: ['c_attn'], saveProjection: false }, /must be saved for all adapters or none/],
      [{ r: 4, targetModules: ['c_fc'] }, /vera_B has a size of 24 but 32 or greater is required/],
      [{ r: 4, targetModules: ['mlp.c_proj'] }, /vera_A has a size of 8 but 32 or greater is required/],
      [{ r: 8, targetModules: ['c_attn'] }, /rank 4 but adapter "other" has r=8/],
      [{ r: 2, targetModules: ['c_attn'] }, /rank 4 but adapter "other" has r=2/],
    ];
    for (const [config, message] of refused) {
      expect(() => peft.addAdapter('other', 'vera', veraConfig(config))).toThrow(message);
      expect([...peft.namedTensors()].map(([n]) => n)).toEqual(names); // nothing half-applied
      expect(tf.memory().numTensors).toBe(memory);
    }
  });

  it("several adapters: a later one reuses the first's projections (same memory), switching and deleting work", () => {
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const peft = getVeraModel(model, { r: 4, targetModules: TARGETS, initWeights: false });
    const first = model.forward(ids);
    const buffers = tf.memory().numDataBuffers;
    peft.addAdapter('other', 'vera', veraConfig({ r: 4, targetModules: ['c_attn'], initWeights: false }));
    // Only the new vectors are new memory: the projections' data is the first adapter's.
    expect(tf.memory().numDataBuffers - buffers).toBe(2 * 2);
    expect(shared(peft, 'vera_A').keys()).toEqual(['default', 'other']);
    const a = shared(peft, 'vera_A');
    expect(a.get('other')!.value.dataId).toBe(a.get('default')!.value.dataId);
    expect(maxAbsDiff(model.forward(ids), first)).toBe(0);
    peft.setAdapter('other');
    const second = model.forward(ids);
    expect(maxAbsDiff(second, first)).toBeGreaterThan(1e-3);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable.every((n) => n.endsWith('.other'))).toBe(true);
    expect(trainable).toHaveLength(2 * 2);
    peft.deleteAdapter('default');
    expect(shared(peft, 'vera_A').keys()).toEqual(['other']);
    expect(maxAbsDiff(model.forward(ids), second)).toBe(0);
    expect(model.getSubmodule('transformer.h.0.mlp.down_proj')).toBeInstanceOf(Linear);
    peft.deleteAdapter('other');
    expect([...peft.namedBuffers()]).toEqual([]);
    expect(() => peft.getSubmodule('base_model.vera_A')).toThrow(/no submodule/);
  });
});

describe('merging (PEFT _test_merge_layers, _test_safe_merge, _test_merge_layers_nan)', () => {
  it('merged, unmerged and merge-and-unload outputs equal the adapter output; merged differs from base', () => {
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const base = model.forward(ids);
    const peft = getVeraModel(model, { r: 3, targetModules: TARGETS, initWeights: false });
    expectMergingMatchesAdapter({ model, peft, ids, base, tensorPrefix: 'vera_' });
    expect([...peft.namedBuffers()]).toEqual([]); // the shared projections are gone too
  });

  it('safe merge refuses NaN weights and changes nothing', () => {
    const model = new ToyLM().eval();
    const peft = getVeraModel(model, { r: 2, targetModules: TARGETS, initWeights: false });
    const layer = model.getSubmodule('transformer.h.1.mlp.down_proj') as VeraLayer;
    const lambdaD = layer.veraLambdaD.get('default')!;
    lambdaD.assign(tf.fill(lambdaD.shape, Number.NaN));
    expectSafeMergeRefusesNaN({ model, peft, tensorPrefix: 'vera_' }, 'transformer.h.1.mlp.down_proj');
  });
});

describe('disabling (PEFT _test_disable_adapter, test_disable_adapters_with_merging)', () => {
  it('a fresh adapter is the identity; disabled gives exactly the base output; re-enabled the adapter output', () => {
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const base = model.forward(ids);
    const peft = getVeraModel(model, { r: 4, targetModules: TARGETS });
    expect(maxAbsDiff(model.forward(ids), base)).toBe(0); // λ_b = 0
    perturb(peft);
    expectDisablingGivesBase({ model, peft, ids, base, tensorPrefix: 'vera_' });
  });
});

describe('training (PEFT _test_training, test_only_params_are_updated)', () => {
  it('only the lambdas and modules_to_save change; base weights and projections stay bit-identical', async () => {
    const model = new ToyLM();
    const peft = getVeraModel(model, {
      r: 4,
      targetModules: TARGETS,
      modulesToSave: ['lm_head'],
      veraDropout: 0.1,
    });
    const projections = [...peft.namedBuffers()].map(([, p]) => p.value.dataSync().slice());
    await expectOnlyAdapterTensorsTrain({ model, peft }, '.vera_lambda_', 2 * 5 * 2 + 1);
    expect([...peft.namedBuffers()].map(([, p]) => p.value.dataSync())).toEqual(projections);
  });

  it('takes gradients of the lambdas only, and runs no gradient kernel for frozen weights or projections', async () => {
    const model = new ToyLM();
    const peft = getVeraModel(model, { r: 3, targetModules: TARGETS, initWeights: false });
    const ids = tokenIds(); // loss on [2, 5] positions: no activation is shaped like a weight matrix
    expectGradientsOnlyFor({ model, peft }, ids, /\.vera_lambda_[bd]\./);

    // A weight gradient is a kernel of the backward pass whose output has the weight's shape: the
    // kernels of forward + backward minus those of the forward alone. (The folded forward, one
    // adapter without dropout, computes W + ΔW, which has the weight's shape, in the forward pass; its
    // backward computes H = dyᵀ·t, [out, r], the source of both λ gradients, which can have vera_B's
    // shape: only the base weights are checked here, and the graded variables above are the λs.)
    const frozenShapes = frozenWeightShapes(peft);
    const kernelsOf = async (run: () => tf.Tensor[]) => {
      const info = await tf.profile(run);
      tf.dispose(info.result as tf.Tensor[]);
      // (Identity kernels only alias their input: tfjs records one per tensor a recorded op reads.)
      return info.kernels
        .filter((k) => k.name !== 'Identity')
        .map((k) => `${k.name} ${k.outputShapes.map((s) => (s ?? []).join('x')).join(',')}`);
    };
    const weightGradientKernels = async () => {
      const forward = await kernelsOf(() => [languageModelLoss(model, ids)]);
      const both = await kernelsOf(() => {
        const result = tf.variableGrads(() => languageModelLoss(model, ids));
        return [result.value, ...Object.values(result.grads)];
      });
      for (const kernel of forward) both.splice(both.indexOf(kernel), 1);
      return both.filter((k) => frozenShapes.some((shape) => k.split(' ')[1]!.split(',').includes(shape)));
    };
    expect(await weightGradientKernels()).toEqual([]);
    // The check can see them: with every weight trainable, base weight gradients are computed.
    for (const parameter of peft.parameters()) parameter.requiresGrad = true;
    expect((await weightGradientKernels()).length).toBeGreaterThanOrEqual(frozenShapes.length - 2);
  });
});

describe('saving and loading (PEFT _test_save_pretrained, test_save_load_roundtrip, test_vera.py)', () => {
  it('writes the lambdas and base_model.vera_A / vera_B under PEFT keys, and loads back identical outputs', async () => {
    dir = await mkdtemp(join(tmpdir(), 'vera-'));
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const peft = getVeraModel(model, { r: 3, targetModules: TARGETS, projectionPrngKey: 5 });
    perturb(peft);
    peft.addAdapter(
      'extra',
      'vera',
      veraConfig({ r: 3, targetModules: ['c_attn'], projectionPrngKey: 5, initWeights: false }),
    );
    // PEFT's test: modified projections are restored from the file (save_projection=True).
    const a = shared(peft, 'vera_A').get('default')!;
    a.assign(tf.mul(a.value, 2));
    const outputs = new Map<string, tf.Tensor>();
    for (const name of ['default', 'extra']) {
      peft.setAdapter(name);
      outputs.set(name, model.forward(ids));
    }
    peft.setAdapter('default');
    await saveAdapter(peft, dir);
    for (const file of [
      'adapter_config.json',
      'adapter_model.safetensors',
      'extra/adapter_model.safetensors',
    ]) {
      expect(existsSync(join(dir, file)), file).toBe(true);
    }
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      peft_type: 'VERA',
      r: 3,
      projection_prng_key: 5,
      save_projection: true,
      inference_mode: true,
      fan_in_fan_out: false,
      d_initial: 0.1,
    });
    const { tensors } = readSafetensorsAsTensors(await readFile(join(dir, 'adapter_model.safetensors')));
    const keys = [...tensors.keys()];
    expect(keys).toHaveLength(2 * 5 * 2 + 2);
    expect(keys).toContain('base_model.vera_A');
    expect(keys).toContain('base_model.vera_B');
    expect(keys).toContain('base_model.model.transformer.h.0.attn.c_attn.vera_lambda_b');
    expect(keys).toContain('base_model.model.transformer.h.1.mlp.down_proj.vera_lambda_d');
    expect(tensors.get('base_model.vera_A')!.shape).toEqual([3, 32]);
    tf.dispose([...tensors.values()]);

    const fresh = toyLMWithBaseOf(model, 'vera_');
    const loaded = await loadAdapter(fresh, dir);
    await loadAdapter(loaded, join(dir, 'extra'), { adapterName: 'extra' });
    for (const [name, expected] of outputs) {
      loaded.setAdapter(name);
      expect(maxAbsDiff(fresh.forward(ids), expected), name).toBe(0);
    }
    const isVera = (n: string) => n.includes('vera_');
    expect(parameterValues(loaded, isVera)).toEqual(parameterValues(peft, isVera));
    expect(maxAbsDiff(shared(loaded, 'vera_A').get('default')!.value, a.value)).toBe(0);
  });

  it('save_projection=false: the file holds only the lambdas; the loader draws the projections again', async () => {
    dir = await mkdtemp(join(tmpdir(), 'vera-'));
    const model = new ToyLM().eval();
    const ids = tokenIds();
    const peft = getVeraModel(model, { r: 4, targetModules: TARGETS, saveProjection: false });
    perturb(peft);
    const expected = model.forward(ids);
    expect([...peft.namedBuffers()].map(([n]) => n)).toEqual([
      'base_model.vera_A.default',
      'base_model.vera_B.default',
    ]);
    expect([...peft.adapterStateDict().keys()].some((k) => k.includes('vera_A'))).toBe(false);
    await saveAdapter(peft, dir);
    const { tensors } = readSafetensorsAsTensors(await readFile(join(dir, 'adapter_model.safetensors')));
    expect([...tensors.keys()].every((k) => k.includes('.vera_lambda_'))).toBe(true);
    tf.dispose([...tensors.values()]);
    const fresh = toyLMWithBaseOf(model, 'vera_');
    const loaded = await loadAdapter(fresh, dir);
    expect(maxAbsDiff(fresh.forward(ids), expected)).toBe(0);
    expect(loaded.adapter('default').config).toMatchObject({ saveProjection: false });
  });

  it('refuses adapters that do not fit; nothing is half-applied', async () => {
    dir = await mkdtemp(join(tmpdir(), 'vera-'));
    const peft = getVeraModel(new ToyLM({ d: 8 }), { r: 2, targetModules: TARGETS });
    await saveAdapter(peft, dir);
    const other = new ToyLM({ d: 6 });
    const names = [...other.namedParameters()].map(([n]) => n);
    const before = tf.memory().numTensors;
    await expect(loadAdapter(other, dir)).rejects.toThrow(
      /cannot load the VERA adapter: .*c_attn\.vera_lambda_b\.default": shape \[24\] does not match the model's \[18\]/,
    );
    expect([...other.namedParameters()].map(([n]) => n)).toEqual(names);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => getVeraModel(other, { targetModules: ['q_proj'] })).toThrow(
      /target modules \[q_proj\] not found in the base model/,
    );
  });
});
