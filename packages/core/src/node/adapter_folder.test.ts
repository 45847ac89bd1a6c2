import '@tensorflow/tfjs-backend-cpu';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadAdapterFiles } from '../adapters/adapter_files.js';
import type { AdapterLayer } from '../adapters/adapter_layer.js';
import { getPeftModel, PeftModel } from '../adapters/peft_model.js';
import { type LayerPeftMethod, registerPeftMethod } from '../adapters/registry.js';
import { ToyModel, toyMethod } from '../adapters/toy_method.test-support.js';
import { defineAdapterConfig, pythonFloat } from '../files/adapter_config.js';
import { readSafetensors } from '../files/safetensors.js';
import { Linear } from '../nn/linear.js';
import { manualSeed } from '../nn/random.js';
import { adapterFolder, loadAdapter, saveAdapter } from './adapter_folder.js';

const schema = defineAdapterConfig({
  peftType: 'TOYFILE',
  fields: {
    r: z.number().int().positive().default(2),
    scale: pythonFloat().default(0),
    target_modules: z.array(z.string()).default(['c_attn']),
    modules_to_save: z.array(z.string()).nullable().default(null),
  },
});
type Config = ReturnType<typeof schema.defaults>;
const fileMethod: LayerPeftMethod<Config> = {
  kind: 'layer',
  name: 'toy',
  peftType: 'TOYFILE',
  tensorPrefix: 'toy_',
  config: schema,
  targetSelection: (config) => ({ targetModules: config.targetModules }),
  createLayer: (base, context) => toyMethod.createLayer(base, context as never),
  modulesToSave: (config) => config.modulesToSave,
};

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  registerPeftMethod(fileMethod);
});
beforeEach(async () => {
  manualSeed(11);
  dir = await mkdtemp(join(tmpdir(), 'peft-adapter-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const input = () => tf.randomNormal([2, 3, 8], 0, 1, 'float32', 4);
const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('saveAdapter / loadAdapter', () => {
  it('writes PEFT folders (default in the root, others in sub-folders) and loads them back exactly', async () => {
    const model = new ToyModel();
    const x = input();
    const config = { ...schema.defaults(), modulesToSave: ['lm_head'] };
    const peft = getPeftModel(model, fileMethod, config);
    peft.addAdapter('second', fileMethod, { ...schema.defaults(), r: 3 });
    const outputs = new Map<string, tf.Tensor>();
    for (const name of ['default', 'second']) {
      peft.setAdapter(name);
      outputs.set(name, model.forward(x));
    }
    expect(await saveAdapter(peft, dir, { baseModelNameOrPath: 'toy/model' })).toEqual([
      dir,
      join(dir, 'second'),
    ]);
    expect(adapterFolder(dir, 'second')).toBe(join(dir, 'second'));
    const text = await readFile(join(dir, 'adapter_config.json'), 'utf8');
    const json = JSON.parse(text);
    expect(json).toMatchObject({
      peft_type: 'TOYFILE',
      inference_mode: true,
      base_model_name_or_path: 'toy/model',
      modules_to_save: ['lm_head'],
    });
    expect(text).toContain('"scale": 0.0');
    const weights = readSafetensors(await readFile(join(dir, 'adapter_model.safetensors')));
    expect(weights.metadata).toEqual({ format: 'pt' });
    expect([...weights.tensors.keys()]).toContain('base_model.model.lm_head.weight');
    expect(existsSync(join(dir, 'second', 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);

    manualSeed(11); // the same base weights
    const fresh = new ToyModel();
    const loaded = await loadAdapter(fresh, dir);
    expect(loaded.adapterNames()).toEqual(['default']);
    await loadAdapter(loaded, join(dir, 'second'), { adapterName: 'second' });
    loaded.setAdapter('default');
    expect(maxAbsDiff(fresh.forward(x), outputs.get('default')!)).toBe(0);
    loaded.setAdapter('second');
    expect(maxAbsDiff(fresh.forward(x), outputs.get('second')!)).toBe(0);
  });

  it('changes nothing when the tensors do not fit, and names the problem', async () => {
    const peft = getPeftModel(new ToyModel(8), fileMethod, schema.defaults());
    await saveAdapter(peft, dir);
    const other = new ToyModel(6);
    const flags = [...other.namedParameters()].map(([, p]) => p.requiresGrad);
    const before = tf.memory().numTensors;
    await expect(loadAdapter(other, dir)).rejects.toThrow(
      /cannot load the TOYFILE adapter: .*shape \[2,8\] does not match the model's \[2,6\]/,
    );
    expect(other.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(Linear);
    expect([...other.namedParameters()].map(([, p]) => p.requiresGrad)).toEqual(flags);
    expect(tf.memory().numTensors).toBe(before);

    const target = getPeftModel(new ToyModel(6), fileMethod, schema.defaults());
    await expect(loadAdapter(target, dir, { adapterName: 'x' })).rejects.toThrow(/does not match/);
    expect(target.adapterNames()).toEqual(['default']);
    expect((target.model.getSubmodule('transformer.h.0.attn.c_attn') as AdapterLayer).adapterNames()).toEqual(
      ['default'],
    );
  });

  it('names missing files and unknown techniques', async () => {
    await expect(loadAdapter(new ToyModel(), dir)).rejects.toThrow(
      /is not an adapter folder: adapter_config\.json and adapter_model\.safetensors are missing$/,
    );
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'NOPE' }));
    await expect(loadAdapter(new ToyModel(), dir)).rejects.toThrow(
      /is not an adapter folder: adapter_model\.safetensors is missing$/,
    );
    await writeFile(join(dir, 'adapter_model.safetensors'), new Uint8Array(8));
    await expect(loadAdapter(new ToyModel(), dir)).rejects.toThrow(
      /no registered PEFT method reads peft_type "NOPE"/,
    );
    expect(() =>
      loadAdapterFiles(new PeftModel(new ToyModel()), {
        config: { peft_type: 'TOYFILE', r: 0 },
        weights: new Uint8Array(),
      }),
    ).toThrow(/field "r" must be a positive integer/);
  });
});
