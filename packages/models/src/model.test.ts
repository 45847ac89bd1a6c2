import { findTargets, Linear, Module, manualSeed, registerAllGradients } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createModel } from './architectures.js';
import type { CausalLM } from './causal_lm.js';
import { GPT2LMHeadModel } from './gpt2/model.js';
import { LlamaForCausalLM } from './llama/model.js';
import { loadModel } from './node/index.js';
import { fixtureDir, useCpuBackend } from './test-support/fixtures.js';

beforeAll(async () => {
  await useCpuBackend();
  registerAllGradients();
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

const CACHE_FIXTURES = ['gpt2-tiny', 'llama-gqa-untied', 'llama-tied-mqa'] as const;

describe('Hugging Face names', () => {
  it('GPT-2 parameters are the checkpoint keys; the tied head is listed once, as wte', () => {
    manualSeed(1);
    const model = new GPT2LMHeadModel({ vocab_size: 16, n_positions: 8, n_embd: 8, n_layer: 1, n_head: 2 });
    expect([...model.namedParameters()].map(([n]) => n)).toEqual([
      'transformer.wte.weight',
      'transformer.wpe.weight',
      'transformer.h.0.ln_1.weight',
      'transformer.h.0.ln_1.bias',
      'transformer.h.0.attn.c_attn.weight',
      'transformer.h.0.attn.c_attn.bias',
      'transformer.h.0.attn.c_proj.weight',
      'transformer.h.0.attn.c_proj.bias',
      'transformer.h.0.ln_2.weight',
      'transformer.h.0.ln_2.bias',
      'transformer.h.0.mlp.c_fc.weight',
      'transformer.h.0.mlp.c_fc.bias',
      'transformer.h.0.mlp.c_proj.weight',
      'transformer.h.0.mlp.c_proj.bias',
      'transformer.ln_f.weight',
      'transformer.ln_f.bias',
    ]);
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(Linear);
    expect((model.getSubmodule('transformer.h.0.attn.c_attn') as Linear).weight.shape).toEqual([8, 24]);
    model.dispose();
  });

  it("LLaMA targets are found by PEFT's default names", () => {
    manualSeed(2);
    const model = new LlamaForCausalLM({
      vocab_size: 16,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 1,
    });
    const targets = findTargets(model, { targetModules: ['q_proj', 'v_proj'] }).map((t) => t.name);
    expect(targets).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    expect([...model.namedParameters()].map(([n]) => n)).toContain('lm_head.weight');
    expect(model.attentionInfo).toEqual({ numLayers: 2, numKeyValueHeads: 1, headDim: 4, numHeads: 2 });
    model.dispose();
  });
});

describe('layers are looked up at call time', () => {
  class Doubling extends Module {
    calls = 0;
    constructor(readonly base: Linear) {
      super();
      this.registerModule('base_layer', base);
    }
    forward(x: tf.Tensor): tf.Tensor {
      this.calls++;
      return tf.mul(this.base.forward(x), 2);
    }
  }

  it.each(['gpt2-tiny', 'llama-gqa-untied'])(
    '%s: a wrapper installed with setSubmodule is used',
    async (name) => {
      const model = await loadModel(fixtureDir(name));
      const ids = [[1, 2, 3]];
      const before = model.forward({ inputIds: ids }).logits;
      const target = name.startsWith('gpt2') ? 'transformer.h.1.mlp.c_proj' : 'model.layers.1.mlp.down_proj';
      const wrapper = new Doubling(model.getSubmodule(target) as Linear);
      model.setSubmodule(target, wrapper);
      const after = model.forward({ inputIds: ids }).logits;
      expect(wrapper.calls).toBe(1);
      expect(maxAbsDiff(before, after)).toBeGreaterThan(1e-3);
      tf.dispose([before, after]);
      model.dispose();
    },
  );
});

describe.each(CACHE_FIXTURES)('%s: KV cache', (name) => {
  it('continuing from a cache gives the logits of the whole sequence', async () => {
    const model = await loadModel(fixtureDir(name));
    const ids = [
      [5, 9, 3, 7, 1, 4],
      [2, 8, 6, 0, 0, 0],
    ];
    const mask = [
      [1, 1, 1, 1, 1, 1],
      [1, 1, 1, 0, 0, 0],
    ];
    const full = model.forward({ inputIds: ids, attentionMask: mask }).logits;
    const first = model.forward({
      inputIds: ids.map((r) => r.slice(0, 4)),
      attentionMask: mask.map((r) => r.slice(0, 4)),
      useCache: true,
    });
    expect(first.cache!.length).toBe(4);
    const second = model.forward({
      inputIds: ids.map((r) => r.slice(4)),
      attentionMask: mask,
      cache: first.cache!,
    });
    expect(second.cache!.length).toBe(6);
    const tail = tf.slice(full, [0, 4, 0], [1, 2, -1]); // the padded row's tail is padding
    expect(maxAbsDiff(tf.slice(second.logits, [0, 0, 0], [1, -1, -1]), tail)).toBeLessThan(1e-5);
    expect(
      maxAbsDiff(tf.slice(first.logits, [0, 0, 0], [-1, 3, -1]), tf.slice(full, [0, 0, 0], [-1, 3, -1])),
    ).toBeLessThan(1e-5);
    const last = model.forward({ inputIds: ids, attentionMask: mask, logitsToKeep: 2 }).logits;
    expect(last.shape).toEqual([2, 2, full.shape[2]!]);
    expect(maxAbsDiff(tf.slice(last, [0, 0, 0], [1, -1, -1]), tail)).toBeLessThan(1e-6);
    first.cache!.dispose();
    second.cache!.dispose();
    model.dispose();
  });

  it('a prefix provider acts like a cache of the prefix (positions offset, mask extended)', async () => {
    const model = await loadModel(fixtureDir(name));
    const prompt = [[5, 9, 3]];
    const rest = [[7, 1]];
    const full = model.forward({ inputIds: [[...prompt[0]!, ...rest[0]!]] }).logits;
    const { cache } = model.forward({ inputIds: prompt, useCache: true });
    model.setAttentionPrefix({
      length: 3,
      prefix: (layer, batch) => {
        expect(batch).toBe(1);
        return { key: cache!.layers[layer]!.key.clone(), value: cache!.layers[layer]!.value.clone() };
      },
    });
    const tail = tf.slice(full, [0, 3, 0], [-1, 2, -1]);
    const withPrefix = model.forward({ inputIds: rest }).logits;
    expect(maxAbsDiff(withPrefix, tail)).toBeLessThan(1e-5);
    const masked = model.forward({ inputIds: rest, attentionMask: [[1, 1]], positionIds: [[0, 1]] }).logits;
    expect(maxAbsDiff(masked, tail)).toBeLessThan(1e-5);
    // A cache taken with the prefix set continues the same way (the prefix is not stored in it).
    const step1 = model.forward({ inputIds: [[7]], useCache: true });
    expect(step1.cache!.length).toBe(1);
    const step2 = model.forward({ inputIds: [[1]], cache: step1.cache! });
    expect(maxAbsDiff(step2.logits, tf.slice(full, [0, 4, 0], [-1, 1, -1]))).toBeLessThan(1e-5);
    model.setAttentionPrefix({
      length: 2,
      prefix: () => ({ key: tf.zeros([1, 1, 2, 1]), value: tf.zeros([1, 1, 2, 1]) }),
    });
    expect(() => model.forward({ inputIds: rest })).toThrow(/attention prefix of layer 0: key \[1,1,2,1\]/);
    model.setAttentionPrefix(null);
    expect(model.attentionPrefix).toBeNull();
    cache!.dispose();
    step1.cache!.dispose();
    step2.cache!.dispose();
    model.dispose();
  });
});

describe('training', () => {
  const configs: [string, () => CausalLM][] = [
    [
      'gpt2',
      () =>
        createModel({
          model_type: 'gpt2',
          vocab_size: 256,
          n_positions: 16,
          n_embd: 16,
          n_layer: 2,
          n_head: 2,
        }),
    ],
    [
      'llama',
      () =>
        createModel({
          model_type: 'llama',
          vocab_size: 256,
          hidden_size: 16,
          intermediate_size: 32,
          num_hidden_layers: 2,
          num_attention_heads: 4,
          num_key_value_heads: 2,
        }),
    ],
  ];

  it.each(configs)(
    '%s: built from a config, seeded, differentiable, dropout only in train mode',
    (_, build) => {
      manualSeed(7);
      const a = build();
      manualSeed(7);
      const b = build();
      const ids = tf.tensor2d([[1, 2, 3, 4]], undefined, 'int32');
      a.eval();
      b.eval();
      expect(maxAbsDiff(a.forward({ inputIds: ids }).logits, b.forward({ inputIds: ids }).logits)).toBe(0);
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => tf.mean(tf.square(a.forward({ inputIds: ids }).logits)) as tf.Scalar),
      );
      const names = new Map([...a.namedParameters()].map(([n, p]) => [p.variable.name, n]));
      const withGrad = Object.entries(grads)
        .filter(([, g]) => tf.tidy(() => tf.any(tf.notEqual(g, 0)).dataSync()[0]))
        .map(([v]) => names.get(v));
      expect(withGrad.length).toBe(names.size);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      if (a.modelType === 'gpt2') {
        a.train();
        const x = a.forward({ inputIds: ids }).logits;
        const y = a.forward({ inputIds: ids }).logits;
        expect(maxAbsDiff(x, y)).toBeGreaterThan(0);
      }
      ids.dispose();
      a.dispose();
      b.dispose();
    },
  );
});

describe('input errors', () => {
  it('names the bad input', async () => {
    const model = await loadModel(fixtureDir('gpt2-tiny'));
    expect(() => model.forward({ inputIds: [[1, 2], [3]] })).toThrow(/inputIds: row 1 has 1 entries/);
    expect(() => model.forward({ inputIds: [[1, 96]] })).toThrow(
      /inputIds: entry \[0, 1\] is not an integer in \[0, 96\) \(96\)/,
    );
    expect(() => model.forward({ inputIds: [[1, 2]], attentionMask: [[1, 1, 1]] })).toThrow(
      /attentionMask shape \[1,3\] must be \[1, 2\]/,
    );
    expect(() => model.forward({ inputIds: [new Array(33).fill(1)] })).toThrow(
      /position 32 is beyond n_positions \(32\)/,
    );
    model.dispose();
  });

  it('refuses sequences beyond a sliding window instead of attending wrongly', () => {
    const model = createModel({
      model_type: 'mistral',
      vocab_size: 16,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      sliding_window: 4,
    });
    expect(model.forward({ inputIds: [[1, 2, 3, 4]] }).logits.shape).toEqual([1, 4, 16]);
    expect(() => model.forward({ inputIds: [[1, 2, 3, 4, 5]] })).toThrow(/exceed sliding_window \(4\)/);
    model.dispose();
  });
});
