import '@tensorflow/tfjs-backend-cpu';
import {
  AdamW,
  adapterFiles,
  type Embedding,
  getPeftMethod,
  getPeftModel,
  loadAdapterFiles,
  Module,
  readSafetensorsAsTensors,
  Trainer,
} from '@peft/core';
import { type CausalLM, generate } from '@peft/models';
import { causalLMLoss, maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { prefixTuningConfig } from './config.js';
import { getPrefixTuningModel, prefixMethod, prefixTuningModelFromConfigJson } from './index.js';
import type { PrefixEncoder } from './layer.js';
import { logitsOf, snapshot, tinyGPT2, tinyLlama } from './models.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const IDS = [
  [3, 14, 15, 9, 2, 6],
  [5, 3, 5, 8, 9, 7],
];

const models = { gpt2: tinyGPT2, llama: tinyLlama };

describe('prefix tuning on a causal LM', () => {
  it('is registered as "prefix" for peft_type PREFIX_TUNING', () => {
    expect(getPeftMethod('prefix')).toBe(prefixMethod);
    expect(prefixMethod.kind).toBe('prompt');
    expect(prefixMethod.peftType).toBe('PREFIX_TUNING');
  });

  for (const [name, make] of Object.entries(models)) {
    it(`${name}: disabled prefix gives exactly the base output; enabled differs`, () => {
      const model = make();
      const base = logitsOf(model, IDS);
      const peft = getPrefixTuningModel(model, { numVirtualTokens: 3 });
      const tuned = logitsOf(model, IDS);
      expect(maxAbsDiff(tuned, base)).toBeGreaterThan(1e-3);
      peft.disableAdapters();
      expect(logitsOf(model, IDS)).toEqual(base);
      peft.enableAdapters();
      expect(logitsOf(model, IDS)).toEqual(tuned);
      expect(peft.withAdaptersDisabled(() => logitsOf(model, IDS))).toEqual(base);
      expect(logitsOf(model, IDS)).toEqual(tuned);
      peft.dispose();
    });
  }

  it('counts parameters as PEFT (GPT-2 small formulas, here on a tiny GPT-2)', () => {
    const model = tinyGPT2();
    const all = model.parameters().reduce((n, p) => n + p.size, 0);
    const [T, L, D, H] = [5, 2, 16, 12];
    const peft = getPrefixTuningModel(model, { numVirtualTokens: T });
    expect(peft.countParameters()).toEqual({ trainable: T * L * 2 * D, all: all + T * L * 2 * D });
    peft.addAdapter(
      'projected',
      'prefix',
      prefixTuningConfig({ numVirtualTokens: T, prefixProjection: true, encoderHiddenSize: H }),
    );
    peft.setAdapter('projected');
    const projected = T * D + (D * H + H) + (H * L * 2 * D + L * 2 * D);
    expect(peft.countParameters().trainable).toBe(projected);
    expect([...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n)).toEqual([
      'prompt_encoder.projected.embedding.weight',
      'prompt_encoder.projected.transform.0.weight',
      'prompt_encoder.projected.transform.0.bias',
      'prompt_encoder.projected.transform.2.weight',
      'prompt_encoder.projected.transform.2.bias',
    ]);
    peft.dispose();
  });

  for (const projection of [false, true]) {
    it(`training changes only the prefix encoder (prefix_projection ${projection})`, async () => {
      const model = tinyGPT2();
      const peft = getPrefixTuningModel(model, {
        numVirtualTokens: 3,
        prefixProjection: projection,
        encoderHiddenSize: 8,
      });
      const before = snapshot(peft.namedParameters());
      peft.train();
      const trainer = new Trainer({
        module: peft,
        loss: (ids: number[][]) => causalLMLoss(model, ids),
        optimizer: new AdamW(peft.namedParameters(), { lr: 0.1 }),
      });
      const first = await trainer.trainStep(IDS);
      let last = first;
      for (let step = 0; step < 3; step++) last = await trainer.trainStep(IDS);
      expect(last.loss).toBeLessThan(first.loss);
      trainer.dispose();
      const after = snapshot(peft.namedParameters());
      for (const [name, value] of before) {
        const changed = value.some((v, i) => v !== after.get(name)![i]);
        expect(changed, name).toBe(name.startsWith('prompt_encoder.default.'));
      }
      peft.dispose();
    });
  }

  it("offsets positions as PEFT: GPT-2's wpe sees T…T+n−1, explicit position_ids are shifted by T", () => {
    const model = tinyGPT2();
    const seen: number[][][] = [];
    const wpe = model.getSubmodule('transformer.wpe') as Embedding;
    class Spy extends Module {
      forward(ids: tf.Tensor): tf.Tensor {
        seen.push(ids.arraySync() as number[][]);
        return wpe.forward(ids);
      }
    }
    model.setSubmodule('transformer.wpe', new Spy());
    const peft = getPrefixTuningModel(model, { numVirtualTokens: 3 });
    model.forward({ inputIds: [[1, 2, 3, 4]] }).logits.dispose();
    expect(seen.pop()).toEqual([[3, 4, 5, 6]]); // as PEFT's verified GPT-2 run
    model.forward({ inputIds: [[1, 2, 3, 4]], positionIds: [[0, 1, 2, 3]] }).logits.dispose();
    expect(seen.pop()).toEqual([[3, 4, 5, 6]]);
    const { logits, cache } = model.forward({ inputIds: [[1, 2]], useCache: true });
    const step = model.forward({ inputIds: [[3]], cache: cache! });
    expect(seen.pop()).toEqual([[5]]); // prefix 3 + cached 2
    peft.disableAdapters();
    model.forward({ inputIds: [[1, 2, 3, 4]] }).logits.dispose();
    expect(seen.pop()).toEqual([[0, 1, 2, 3]]);
    tf.dispose([logits, step.logits]);
    cache!.dispose();
    peft.dispose();
  });

  for (const [name, make] of Object.entries(models)) {
    it(`${name}: padding still masks with a prefix (a left-padded row equals the row alone)`, () => {
      const model = make();
      const peft = getPrefixTuningModel(model, { numVirtualTokens: 2 });
      const alone = model.forward({ inputIds: [[7, 8, 9]] }).logits;
      const batch = model.forward({
        inputIds: [IDS[0]!.slice(0, 5), [0, 0, 7, 8, 9]],
        attentionMask: [
          [1, 1, 1, 1, 1],
          [0, 0, 1, 1, 1],
        ],
        positionIds: [
          [0, 1, 2, 3, 4],
          [1, 1, 0, 1, 2],
        ],
      }).logits;
      const row = tf.slice(batch, [1, 2, 0], [1, 3, -1]);
      expect(maxAbsDiff(row, alone)).toBeLessThan(1e-5);
      tf.dispose([alone, batch, row]);
      peft.dispose();
    });

    it(`${name}: generation with a prefix and the KV cache equals recomputing every step`, async () => {
      const model = make();
      const peft = getPrefixTuningModel(model, { numVirtualTokens: 3 });
      const prompts = [
        [4, 8, 15, 16],
        [23, 4],
      ];
      const options = { maxNewTokens: 6, eosTokenId: null, padTokenId: 0 };
      const cached = await generate(model, prompts, options);
      expect(await generate(model, prompts, { ...options, useCache: false })).toEqual(cached);
      // The single-prompt path, against greedy decoding by full forward passes.
      const single = await generate(model, prompts[0]!, options);
      const sequence = [...prompts[0]!];
      for (let i = 0; i < 6; i++) {
        const logits = model.forward({ inputIds: [sequence], logitsToKeep: 1 }).logits;
        sequence.push(tf.argMax(tf.reshape(logits, [-1])).dataSync()[0]!);
        logits.dispose();
      }
      expect(single).toEqual(sequence.slice(4));
      expect(cached[0]).toEqual(single);
      peft.dispose();
    });
  }

  it('cannot be merged: core refuses with a clear message and changes nothing', () => {
    const model = tinyGPT2();
    const peft = getPrefixTuningModel(model, { numVirtualTokens: 2 });
    const tuned = logitsOf(model, IDS);
    expect(() => peft.merge()).toThrow('"prefix" adapters cannot be merged into the weights');
    expect(() => peft.mergeAndUnload()).toThrow('"prefix" adapters cannot be merged into the weights');
    expect(logitsOf(model, IDS)).toEqual(tuned);
    // Unloading (without merging) gives back the plain model.
    const base = peft.withAdaptersDisabled(() => logitsOf(model, IDS));
    expect(logitsOf(peft.unload() as CausalLM, IDS)).toEqual(base);
    expect(model.attentionPrefix).toBeNull();
    model.dispose();
  });

  it('a save with the projection stores the projected embeddings; loading gives the same logits, frozen', async () => {
    const model = tinyLlama();
    const peft = getPrefixTuningModel(model, {
      numVirtualTokens: 3,
      prefixProjection: true,
      encoderHiddenSize: 6,
    });
    const encoder = peft.getSubmodule('prompt_encoder.default') as PrefixEncoder;
    const tuned = logitsOf(model, IDS);
    const before = tf.memory().numTensors;
    const files = await adapterFiles(peft);
    await adapterFiles(peft); // a second save frees the first one's projection
    expect(tf.memory().numTensors).toBe(before + 1); // the encoder keeps the last one until disposed
    expect(JSON.parse(files.config)).toMatchObject({
      prefix_projection: true,
      encoder_hidden_size: 6,
      inference_mode: true,
      token_dim: 8,
      num_attention_heads: 2,
      num_layers: 2,
      num_transformer_submodules: 1,
      task_type: 'CAUSAL_LM',
    });
    const { tensors } = readSafetensorsAsTensors(files.weights);
    expect([...tensors.keys()]).toEqual(['prompt_embeddings']);
    const saved = tensors.get('prompt_embeddings')!;
    expect(saved.shape).toEqual([3, 2 * 2 * 8]);
    const output = encoder.output();
    expect(maxAbsDiff(saved, output)).toBe(0);
    // Not the raw embedding table: that one is [3, token_dim].
    expect(encoder.embedding.weight.shape).toEqual([3, 8]);
    tf.dispose([output, ...tensors.values()]);

    const fresh = tinyLlama();
    const loaded = loadAdapterFiles(fresh, files);
    const reloaded = loaded.getSubmodule('prompt_encoder.default') as PrefixEncoder;
    expect(reloaded.inferenceMode).toBe(true);
    expect(reloaded.transform).toBeNull();
    expect(loaded.countParameters().trainable).toBe(0);
    expect(maxAbsDiff(logitsOf(fresh, IDS), tuned)).toBeLessThan(1e-5);
    peft.dispose();
    loaded.dispose();
  });

  it('holds several adapters: setAdapter switches the prefix, deleteAdapter removes it', () => {
    const model = tinyGPT2();
    const base = logitsOf(model, IDS);
    const peft = getPrefixTuningModel(model, { numVirtualTokens: 2 });
    const first = logitsOf(model, IDS);
    peft.addAdapter('other', 'prefix', prefixTuningConfig({ numVirtualTokens: 4 }));
    expect(logitsOf(model, IDS)).toEqual(first); // the first adapter stays active
    peft.setAdapter('other');
    const second = logitsOf(model, IDS);
    expect(maxAbsDiff(second, first)).toBeGreaterThan(1e-3);
    expect(model.attentionPrefix?.length).toBe(4);
    expect(peft.countParameters().trainable).toBe(4 * 2 * 2 * 16);
    peft.deleteAdapter('other');
    expect(logitsOf(model, IDS)).toEqual(first);
    peft.deleteAdapter('default');
    expect(logitsOf(model, IDS)).toEqual(base);
    model.dispose();
  });

  it('builds from PEFT-style JSON, as `peft train --method prefix` does through the registry', () => {
    const model = tinyGPT2();
    const peft = prefixTuningModelFromConfigJson(
      model,
      '{"num_virtual_tokens": 4, "prefix_projection": true}',
    );
    expect(peft.adapter('default').config).toMatchObject({
      numVirtualTokens: 4,
      tokenDim: 16,
      numLayers: 2,
      numAttentionHeads: 4,
      encoderHiddenSize: 16,
    });
    peft.dispose();
    const other = tinyGPT2();
    const method = getPeftMethod('prefix');
    const config = method.config.parse({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: 2 });
    const viaRegistry = getPeftModel(other, method, config, { modelType: other.modelType });
    expect(viaRegistry.countParameters().trainable).toBe(2 * 2 * 2 * 16);
    viaRegistry.dispose();
    expect(() =>
      prefixTuningModelFromConfigJson(tinyGPT2(), '{"num_virtual_tokens": 4, "r": 8}', {
        onWarning: () => {},
      }),
    ).not.toThrow();
    expect(() => prefixTuningModelFromConfigJson(tinyGPT2(), '{"peft_type": "LORA"}')).toThrow(
      /PREFIX_TUNING/,
    );
  });

  it('refuses files and models that do not fit, changing nothing', async () => {
    const model = tinyGPT2();
    const peft = getPrefixTuningModel(model, { numVirtualTokens: 2 });
    const files = await adapterFiles(peft);
    const other = tinyLlama();
    expect(() => loadAdapterFiles(other, files)).toThrow(/num_layers|token_dim|num_attention_heads/);
    expect(other.attentionPrefix).toBeNull();
    const config = JSON.parse(files.config);
    const wrongLength = JSON.stringify({ ...config, num_virtual_tokens: 3 });
    const fresh = tinyGPT2();
    expect(() => loadAdapterFiles(fresh, { config: wrongLength, weights: files.weights })).toThrow(
      /"prompt_embeddings" has shape \[2,64\], the config needs \[3,64\]/,
    );
    expect(fresh.attentionPrefix).toBeNull();
    expect(fresh.parameters().every((p) => p.requiresGrad)).toBe(true);
    class NotPrefixable extends Module {}
    expect(() => getPrefixTuningModel(new NotPrefixable(), { numVirtualTokens: 2 })).toThrow(
      /needs a model whose attention accepts a key\/value prefix/,
    );
    expect(() => getPrefixTuningModel(tinyGPT2(), {})).toThrow(/num_virtual_tokens is required/);
    peft.dispose();
    other.dispose();
    fresh.dispose();
  });
});
