import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Linear } from '../nn/linear.js';
import { manualSeed } from '../nn/random.js';
import { AdapterLayer } from './adapter_layer.js';
import { findTargets, targetModulesOrDefault } from './find_targets.js';
import { getPeftModel, PeftModel, peftModelFromConfigJson, savedKey } from './peft_model.js';
import { getPeftMethod, registerPeftMethod } from './registry.js';
import { resetToyFailures, ToyModel, toyMethod } from './toy_method.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  registerPeftMethod(toyMethod);
});

beforeEach(() => {
  manualSeed(1234);
  resetToyFailures();
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

function input(d = 8): tf.Tensor {
  return tf.randomNormal([2, 3, d], 0, 1, 'float32', 7);
}

function weightsOf(model: ToyModel): Map<string, Float32Array> {
  return new Map([...model.namedParameters()].map(([n, p]) => [n, p.value.dataSync() as Float32Array]));
}

describe('findTargets', () => {
  const model = new ToyModel();

  it('matches list entries exactly or as a dotted suffix', () => {
    expect(findTargets(model, { targetModules: ['c_attn'] }).map((t) => t.name)).toEqual([
      'transformer.h.0.attn.c_attn',
      'transformer.h.1.attn.c_attn',
    ]);
    expect(findTargets(model, { targetModules: ['transformer.h.1.mlp.c_proj'] }).map((t) => t.name)).toEqual([
      'transformer.h.1.mlp.c_proj',
    ]);
    // "proj" is not a dotted suffix of "c_proj"
    expect(() => findTargets(model, { targetModules: ['proj'] })).toThrow(/not found in the base model/);
  });

  it('treats a string as a regex that must match the whole name', () => {
    expect(findTargets(model, { targetModules: '.*\\.attn\\.c_proj' }).map((t) => t.name)).toEqual([
      'transformer.h.0.attn.c_proj',
      'transformer.h.1.attn.c_proj',
    ]);
    expect(() => findTargets(model, { targetModules: 'c_proj' })).toThrow(/not found/);
  });

  it('"all-linear" takes every linear layer but the output head', () => {
    const names = findTargets(model, { targetModules: 'all-linear' }).map((t) => t.name);
    expect(names).toHaveLength(8);
    expect(names).not.toContain('lm_head');
  });

  it('restricts to layersToTransform by block index', () => {
    expect(
      findTargets(model, { targetModules: ['c_fc'], layersToTransform: [1], layersPattern: 'h' }).map(
        (t) => t.name,
      ),
    ).toEqual(['transformer.h.1.mlp.c_fc']);
    expect(findTargets(model, { targetModules: ['c_fc'], layersToTransform: 0 }).map((t) => t.name)).toEqual([
      'transformer.h.0.mlp.c_fc',
    ]);
  });

  it('names the problem when nothing matches or a target is not linear', () => {
    expect(() => findTargets(model, { targetModules: ['q_proj'] })).toThrow(
      /target modules \[q_proj\] not found in the base model; linear layers include: transformer\.h\.0\.attn\.c_attn/,
    );
    expect(() => findTargets(model, { targetModules: ['attn'] })).toThrow(
      /must be linear layers; not supported: transformer\.h\.0\.attn/,
    );
  });
});

describe('targetModulesOrDefault', () => {
  const defaults = { gpt2: ['c_attn'], llama: ['q_proj', 'v_proj'] };

  it("gives the config's target_modules, else the default for the model type, else names what is missing", () => {
    expect(targetModulesOrDefault(['c_fc'], 'gpt2', defaults, 'Toy')).toEqual(['c_fc']);
    expect(targetModulesOrDefault('all-linear', undefined, defaults, 'Toy')).toBe('all-linear');
    expect(targetModulesOrDefault(null, 'llama', defaults, 'Toy')).toEqual(['q_proj', 'v_proj']);
    expect(() => targetModulesOrDefault(undefined, 'mystery', defaults, 'Toy')).toThrow(
      'Toy config: target_modules is not set and there is no default for model type "mystery"; set targetModules (defaults exist for gpt2, llama)',
    );
    expect(() => targetModulesOrDefault(null, undefined, defaults, 'Toy')).toThrow(/for model type null;/);
  });
});

describe('PeftModel with a registered technique', () => {
  it('wraps targets in place with PEFT names and freezes the base', () => {
    const model = new ToyModel();
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn'] });
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(AdapterLayer);
    const names = [...peft.namedParameters()].map(([n]) => n);
    expect(names).toContain('base_model.model.transformer.h.0.attn.c_attn.base_layer.weight');
    expect(names).toContain('base_model.model.transformer.h.0.attn.c_attn.toy_down.default.weight');
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.toy_down.default.weight',
      'base_model.model.transformer.h.0.attn.c_attn.toy_up.default.weight',
      'base_model.model.transformer.h.1.attn.c_attn.toy_down.default.weight',
      'base_model.model.transformer.h.1.attn.c_attn.toy_up.default.weight',
    ]);
    peft.dispose();
  });

  it('counts parameters and prints them as PEFT does', () => {
    const d = 8;
    const model = new ToyModel(d, 2, 11);
    const base = 2 * (d * 3 * d + 3 * d + d * d + d + d * 2 * d + 2 * d + 2 * d * d + d) + d * 11;
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn'] });
    const adapter = 2 * (2 * d + 3 * d * 2);
    expect(peft.countParameters()).toEqual({ trainable: adapter, all: base + adapter });
    expect(peft.trainableParametersSummary()).toBe(
      `trainable params: ${adapter} || all params: ${(base + adapter).toLocaleString('en-US')} || trainable%: ${((100 * adapter) / (base + adapter)).toFixed(4)}`,
    );
    expect(peft.trainableParametersSummary()).toMatch(
      /^trainable params: 128 \|\| all params: 1,\d{3} \|\| trainable%: \d+\.\d{4}$/,
    );
    peft.dispose();
  });

  it('adds the adapter output; disabling gives exactly the base output; re-enabling restores it', () => {
    const model = new ToyModel();
    const x = input();
    const before = model.forward(x);
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn', 'c_fc'] });
    const adapted = model.forward(x);
    expect(maxAbsDiff(adapted, before)).toBeGreaterThan(1e-3);
    const disabled = peft.withAdaptersDisabled(() => model.forward(x));
    expect(maxAbsDiff(disabled, before)).toBe(0);
    expect(maxAbsDiff(model.forward(x), adapted)).toBe(0);
    peft.dispose();
  });

  it('merged, unmerged and merge-and-unload outputs equal the adapter output (Conv1D and Linear layouts)', () => {
    const model = new ToyModel();
    const x = input();
    const base = model.forward(x);
    const peft = getPeftModel(model, 'toy', { r: 3, targetModules: ['c_attn', 'lm_head'] });
    const adapted = model.forward(x);
    peft.merge();
    expect(peft.adapterLayers().every(([, l]) => l.mergedAdapters.includes('default'))).toBe(true);
    const merged = model.forward(x);
    expect(maxAbsDiff(merged, adapted)).toBeLessThan(1e-4);
    expect(maxAbsDiff(merged, base)).toBeGreaterThan(1e-3);
    peft.merge(); // idempotent
    expect(maxAbsDiff(model.forward(x), adapted)).toBeLessThan(1e-4);
    peft.unmerge();
    expect(maxAbsDiff(model.forward(x), adapted)).toBeLessThan(1e-4);
    // disabling while merged unmerges first and runs the base
    peft.merge();
    expect(
      maxAbsDiff(
        peft.withAdaptersDisabled(() => model.forward(x)),
        base,
      ),
    ).toBeLessThan(1e-5);
    const plain = peft.mergeAndUnload();
    expect(plain.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(Linear);
    expect([...plain.namedParameters()].some(([n]) => n.includes('toy_'))).toBe(false);
    expect(maxAbsDiff(plain.forward(x), adapted)).toBeLessThan(1e-4);
  });

  it('safe merge refuses non-finite weights and changes nothing', () => {
    const model = new ToyModel();
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn', 'c_fc'] });
    const layer = model.getSubmodule('transformer.h.1.mlp.c_fc') as AdapterLayer;
    const up = [...layer.namedParameters()].find(([n]) => n.startsWith('toy_up'))![1];
    up.assign(tf.fill(up.shape, Number.NaN));
    const before = weightsOf(model);
    expect(() => peft.merge({ safe: true })).toThrow(
      /safe merge refused.*transformer\.h\.1\.mlp\.c_fc.*nothing was merged/,
    );
    for (const [name, values] of weightsOf(model)) {
      if (name.includes('toy_up')) continue;
      expect(values, name).toEqual(before.get(name));
    }
    expect(peft.adapterLayers().every(([, l]) => l.mergedAdapters.length === 0)).toBe(true);
  });

  it('holds several named adapters and switches between them (only the active one trains)', () => {
    const model = new ToyModel();
    const x = input();
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn'] });
    const first = model.forward(x);
    peft.addAdapter('second', 'toy', { r: 4, targetModules: ['c_attn', 'c_fc'] });
    expect(peft.activeAdapter).toBe('default');
    expect(maxAbsDiff(model.forward(x), first)).toBe(0);
    peft.setAdapter('second');
    const second = model.forward(x);
    expect(maxAbsDiff(second, first)).toBeGreaterThan(1e-3);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable.length).toBe(8);
    expect(trainable.every((n) => n.includes('.second.'))).toBe(true);
    peft.setAdapter('default');
    expect(maxAbsDiff(model.forward(x), first)).toBe(0);
    peft.deleteAdapter('second');
    expect(model.getSubmodule('transformer.h.0.mlp.c_fc')).toBeInstanceOf(Linear);
    expect(peft.adapterNames()).toEqual(['default']);
    expect(maxAbsDiff(model.forward(x), first)).toBe(0);
  });

  it('leaves the model untouched when adding an adapter fails half-way', () => {
    const model = new ToyModel();
    const peft = new PeftModel(model);
    const tensorsBefore = tf.memory().numTensors;
    const namesBefore = [...model.namedParameters()].map(([n]) => n);
    expect(() =>
      peft.addAdapter('default', 'toy', { r: 2, targetModules: ['c_attn', 'c_fc'], failOnLayer: 3 }),
    ).toThrow('toy: planned failure');
    expect([...model.namedParameters()].map(([n]) => n)).toEqual(namesBefore);
    expect(peft.adapterNames()).toEqual([]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(() => peft.addAdapter('default', 'toy', { r: 2, targetModules: ['nope'] })).toThrow(/not found/);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('saves adapter tensors under PEFT keys and loads them back exactly', () => {
    manualSeed(1);
    const model = new ToyModel();
    const x = input();
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn'] });
    const adapted = model.forward(x);
    const saved = new Map([...peft.adapterStateDict()].map(([k, t]) => [k, tf.clone(t)]));
    expect([...saved.keys()]).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.toy_down.weight',
      'base_model.model.transformer.h.0.attn.c_attn.toy_up.weight',
      'base_model.model.transformer.h.1.attn.c_attn.toy_down.weight',
      'base_model.model.transformer.h.1.attn.c_attn.toy_up.weight',
    ]);
    manualSeed(99);
    peft.addAdapter('loaded', 'toy', { r: 2, targetModules: ['c_attn'] });
    peft.setAdapter('loaded');
    expect(maxAbsDiff(model.forward(x), adapted)).toBeGreaterThan(1e-3);
    peft.loadAdapterStateDict('loaded', saved);
    expect(maxAbsDiff(model.forward(x), adapted)).toBe(0);

    const wrong = new Map(saved);
    wrong.set('base_model.model.transformer.h.1.attn.c_attn.toy_up.weight', tf.zeros([5, 2]));
    wrong.delete('base_model.model.transformer.h.0.attn.c_attn.toy_down.weight');
    const snapshot = weightsOf(model);
    expect(() => peft.loadAdapterStateDict('loaded', wrong)).toThrow(/does not match|missing tensor/);
    expect(weightsOf(model)).toEqual(snapshot);
  });

  it('rejects unknown techniques and mixing techniques on one layer', () => {
    expect(() => getPeftMethod('nope')).toThrow(/unknown PEFT method "nope"; registered: .*toy/);
    const model = new ToyModel();
    const peft = getPeftModel(model, toyMethod, { r: 2, targetModules: ['c_attn'] });
    const other = { ...toyMethod, name: 'toy2' };
    expect(() => peft.addAdapter('x', other, { r: 2, targetModules: ['c_attn'] })).toThrow(
      /already holds a "toy" adapter; cannot add "toy2"/,
    );
  });

  it('does not leak tensors in forward, merge and unmerge', () => {
    const model = new ToyModel();
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn'] });
    const x = input();
    model.forward(x).dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      model.forward(x).dispose();
      peft.merge({ safe: true });
      peft.unmerge();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('peftModelFromConfigJson', () => {
  /** The toy technique, recording what its parser is given. */
  function recordingToy() {
    const parsed: { json: unknown; warns: boolean }[] = [];
    const method = {
      ...toyMethod,
      config: {
        ...toyMethod.config,
        parse: (json: unknown, options?: { onWarning?: (message: string) => void }) => {
          parsed.push({ json, warns: options?.onWarning !== undefined });
          return toyMethod.config.parse(json);
        },
      },
    };
    return { method, parsed };
  }

  it("reads config text or an object, adds the method's peft_type when it is left out, and wraps the model", () => {
    const { method, parsed } = recordingToy();
    const model = new ToyModel();
    const peft = peftModelFromConfigJson(model, method, '{"r": 2, "targetModules": ["c_attn"]}');
    expect(parsed[0]).toEqual({ json: { r: 2, targetModules: ['c_attn'], peft_type: 'TOY' }, warns: false });
    expect(peft.adapterNames()).toEqual(['default']);
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(AdapterLayer);

    const warnings: string[] = [];
    const named = peftModelFromConfigJson(
      new ToyModel(),
      method,
      { peft_type: 'OTHER', r: 2, targetModules: ['c_attn'] },
      { adapterName: 'mine', onWarning: (m) => warnings.push(m) },
    );
    // A peft_type that is given is left for the method's parser to judge.
    expect(parsed[1]).toEqual({ json: { peft_type: 'OTHER', r: 2, targetModules: ['c_attn'] }, warns: true });
    expect(named.adapterNames()).toEqual(['mine']);
  });

  it('names the config in the error for text that is not JSON', () => {
    const { method } = recordingToy();
    expect(() => peftModelFromConfigJson(new ToyModel(), method, '{r: 2', {}, 'Toy')).toThrow(
      /^Toy config is not valid JSON: /,
    );
    expect(() => peftModelFromConfigJson(new ToyModel(), method, '{r: 2')).toThrow(
      /^toy config is not valid JSON: /,
    );
  });
});

describe('savedKey', () => {
  it('removes the adapter name as PEFT does', () => {
    expect(savedKey('base_model.model.a.lora_A.default.weight', 'default', 'lora_')).toBe(
      'base_model.model.a.lora_A.weight',
    );
    expect(savedKey('base_model.model.a.vera_lambda_b.default', 'default', 'vera_')).toBe(
      'base_model.model.a.vera_lambda_b',
    );
    expect(savedKey('base_model.vera_A.default', 'default', 'vera_')).toBe('base_model.vera_A');
    expect(savedKey('base_model.model.a.lora_A.other.weight', 'default', 'lora_')).toBeNull();
    expect(savedKey('base_model.model.a.base_layer.weight', 'default', 'lora_')).toBeNull();
  });
});

describe('train/eval mode', () => {
  it('new adapter layers take the mode of the layer they wrap', () => {
    const model = new ToyModel();
    model.eval();
    const peft = getPeftModel(model, 'toy', { r: 2, targetModules: ['c_attn'] });
    expect([...model.namedModules()].every(([, m]) => !m.training)).toBe(true);
    peft.train();
    peft.addAdapter('second', 'toy', { r: 2, targetModules: ['c_fc'] });
    expect([...model.namedModules()].every(([, m]) => m.training)).toBe(true);
  });
});
