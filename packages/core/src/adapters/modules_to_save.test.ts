import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layer_norm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { manualSeed } from '../nn/random.js';
import { RMSNorm } from '../nn/rms_norm.js';
import { findTargets } from './find_targets.js';
import { copyModule, findModulesToSave, ModulesToSaveWrapper } from './modules_to_save.js';
import { getPeftModel } from './peft_model.js';
import type { LayerPeftMethod } from './registry.js';
import { type ToyConfig, ToyModel, toyMethod } from './toy_method.test-support.js';

type SavingConfig = ToyConfig & { modulesToSave?: string[] };
const savingMethod: LayerPeftMethod<SavingConfig> = {
  ...(toyMethod as LayerPeftMethod<SavingConfig>),
  peftType: 'TOY_SAVING',
  modulesToSave: (config) => config.modulesToSave,
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});

beforeEach(() => manualSeed(5));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

const input = () => tf.randomNormal([2, 3, 8], 0, 1, 'float32', 3);

describe('copyModule', () => {
  it('copies core layers with equal values and independent variables', () => {
    const tied = new Embedding({ numEmbeddings: 5, embeddingDim: 4 });
    const layers: Module[] = [
      new Linear({ inFeatures: 4, outFeatures: 3, fanInFanOut: true }),
      new Linear({ inFeatures: 4, outFeatures: 5, bias: false, tiedWeight: tied.weight }),
      tied,
      new LayerNorm({ dim: 4, eps: 1e-3 }),
      new RMSNorm({ dim: 4 }),
    ];
    for (const layer of layers) {
      const copy = copyModule(layer);
      expect(copy.constructor).toBe(layer.constructor);
      const a = [...layer.namedParameters()];
      const b = [...copy.namedParameters()];
      expect(b.map(([n]) => n)).toEqual(a.map(([n]) => n));
      for (let i = 0; i < a.length; i++) {
        expect(b[i]![1].value.dataSync()).toEqual(a[i]![1].value.dataSync());
        expect(b[i]![1]).not.toBe(a[i]![1]);
      }
    }
    class Custom extends Module {}
    expect(() => copyModule(new Custom(), 'x.custom')).toThrow(/cannot copy "x\.custom" \(Custom\)/);
  });
});

describe('modules_to_save', () => {
  it('matches names as suffixes, outermost only, and names the problem when nothing matches', () => {
    const model = new ToyModel();
    expect(findModulesToSave(model, ['lm_head']).map(([n]) => n)).toEqual(['lm_head']);
    expect(findModulesToSave(model, ['mlp']).map(([n]) => n)).toEqual([
      'transformer.h.0.mlp',
      'transformer.h.1.mlp',
    ]);
    expect(() => findModulesToSave(model, ['score'])).toThrow(
      'modules_to_save [score] not found in the base model',
    );
  });

  it('trains and saves a copy per adapter; disabling runs the original; unload keeps the copy', () => {
    const model = new ToyModel();
    const x = input();
    const base = model.forward(x);
    const peft = getPeftModel(model, savingMethod, {
      r: 2,
      targetModules: ['c_attn'],
      modulesToSave: ['lm_head'],
    });
    expect(model.getSubmodule('lm_head')).toBeInstanceOf(ModulesToSaveWrapper);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toContain('base_model.model.lm_head.modules_to_save.default.weight');
    expect(trainable).not.toContain('base_model.model.lm_head.original_module.weight');
    expect([...peft.adapterStateDict().keys()]).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.toy_down.weight',
      'base_model.model.transformer.h.0.attn.c_attn.toy_up.weight',
      'base_model.model.transformer.h.1.attn.c_attn.toy_down.weight',
      'base_model.model.transformer.h.1.attn.c_attn.toy_up.weight',
      'base_model.model.lm_head.weight',
    ]);
    // all-linear never reaches inside the wrapper (the original and the copies)
    expect(
      findTargets(model, { targetModules: 'all-linear' }).some((t) => t.name.startsWith('lm_head')),
    ).toBe(false);

    const copy = (model.getSubmodule('lm_head') as ModulesToSaveWrapper).copies.get('default') as Linear;
    copy.weight.assign(tf.mul(copy.weight.value, 2));
    const adapted = model.forward(x);
    expect(
      maxAbsDiff(
        peft.withAdaptersDisabled(() => model.forward(x)),
        base,
      ),
    ).toBe(0);

    // a second adapter without modules_to_save runs the original head
    peft.addAdapter('other', savingMethod, { r: 2, targetModules: ['c_attn'] });
    peft.setAdapter('other');
    expect((model.getSubmodule('lm_head') as ModulesToSaveWrapper).current()).toBe(
      (model.getSubmodule('lm_head') as ModulesToSaveWrapper).originalModule,
    );
    peft.deleteAdapter('other');

    // loading the saved tensors into a fresh adapter reproduces the output
    const saved = new Map([...peft.adapterStateDict()].map(([k, t]) => [k, tf.clone(t)]));
    peft.addAdapter('loaded', savingMethod, { r: 2, targetModules: ['c_attn'], modulesToSave: ['lm_head'] });
    peft.setAdapter('loaded');
    peft.loadAdapterStateDict('loaded', saved);
    expect(maxAbsDiff(model.forward(x), adapted)).toBe(0);
    peft.deleteAdapter('loaded');

    peft.setAdapter('default');
    const plain = peft.mergeAndUnload();
    expect(plain.getSubmodule('lm_head')).toBe(copy);
    expect(maxAbsDiff(plain.forward(x), adapted)).toBeLessThan(1e-5);
  });

  it('deleting the adapter restores the original module; a failing add changes nothing', () => {
    const model = new ToyModel();
    const head = model.getSubmodule('lm_head');
    const before = tf.memory().numTensors;
    const peft = getPeftModel(model, savingMethod, {
      r: 2,
      targetModules: ['c_attn'],
      modulesToSave: ['lm_head'],
    });
    expect(() =>
      peft.addAdapter('bad', savingMethod, {
        r: 2,
        targetModules: ['c_fc'],
        modulesToSave: ['nothing_here'],
      }),
    ).toThrow(/modules_to_save \[nothing_here\] not found/);
    expect(peft.adapterNames()).toEqual(['default']);
    expect(model.getSubmodule('transformer.h.0.mlp.c_fc')).toBeInstanceOf(Linear);
    expect(() =>
      peft.addAdapter('bad', savingMethod, { r: 2, targetModules: ['c_fc'], modulesToSave: ['c_attn'] }),
    ).toThrow(/already an adapter layer/);
    peft.deleteAdapter('default');
    expect(model.getSubmodule('lm_head')).toBe(head);
    expect(tf.memory().numTensors).toBe(before);
  });
});
