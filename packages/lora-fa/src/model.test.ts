// LoRA-FA models on tiny GPT-2 (Conv1D) and LLaMA (Linear) checkpoints: the registry entry, what
// trains, LoRA's gradients for B, training with A bit-identical, LoRA files in and out.
import '@tensorflow/tfjs-backend-cpu';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  adapterFiles,
  getPeftMethod,
  getPeftModel,
  Linear,
  manualSeed,
  type PeftModel,
  peftMethodForType,
  readSafetensors,
  Trainer,
} from '@peft/core';
import { loadAdapter, saveAdapter } from '@peft/core/node';
import { type LoraConfigInput, LoraLayer, loraConfig, loraMethod } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  getLoraFaModel,
  LoraFaLayer,
  loadLoraFaAdapter,
  loraFaMethod,
  loraFaModelFromConfigJson,
} from './index.js';
import { adapted, gradientsByName, tinyGpt2, tinyLlama, tokens } from './models.test-support.js';
import { createOptimizer, LoraFaOptimizer } from './optimizer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

function logits(model: CausalLM, ids = tokens(2, 7, 5)): tf.Tensor {
  return model.forward({ inputIds: ids }).logits;
}

function values(peft: PeftModel, filter: (name: string) => boolean): Map<string, Float32Array> {
  return new Map(
    [...peft.namedParameters()]
      .filter(([n]) => filter(n))
      .map(([n, p]) => [n, p.value.dataSync().slice() as Float32Array]),
  );
}

describe('the lora-fa technique', () => {
  it('is registered as "lora-fa" and saves as LoRA: files of type LORA still load with @peft/lora', () => {
    expect(getPeftMethod('lora-fa')).toBe(loraFaMethod);
    expect(loraFaMethod).toMatchObject({
      kind: 'layer',
      peftType: 'LORA',
      savesAs: 'lora',
      tensorPrefix: 'lora_',
    });
    expect(peftMethodForType('LORA')).toBe(loraMethod);
    expect(loraFaMethod.createOptimizer).toBe(createOptimizer);
  });

  it('wraps the targets with LoRA-FA layers and trains only lora_B (PEFT names, LoRA parameter counts)', () => {
    const model = tinyGpt2();
    const base = [...model.namedParameters()].reduce((sum, [, p]) => sum + p.size, 0);
    const peft = getLoraFaModel(model, { r: 4 }); // default targets for gpt2: c_attn (32 → 96)
    expect(model.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(LoraFaLayer);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.default.weight',
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.default.weight',
    ]);
    // B only: 2 · (96 · 4) trainable; A (2 · 4 · 32) frozen but counted in all, as PEFT counts it.
    expect(peft.countParameters()).toEqual({ trainable: 2 * 96 * 4, all: base + 2 * 96 * 4 + 2 * 4 * 32 });
    expect(peft.adapter('default').config).toMatchObject({
      peftType: 'LORA',
      fanInFanOut: true,
      targetModules: ['c_attn'],
    });
  });

  it('builds from PEFT snake_case config JSON, through the registry (as the CLI does) or directly', () => {
    const json = { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], lora_dropout: 0.1 };
    const method = getPeftMethod('lora-fa');
    const viaRegistry = getPeftModel(
      tinyLlama(),
      method,
      method.config.parse({ ...json, peft_type: 'LORA' }),
    );
    const direct = loraFaModelFromConfigJson(tinyLlama(), JSON.stringify(json));
    for (const peft of [viaRegistry, direct]) {
      expect(peft.adapterLayers().map(([n]) => n)).toEqual([
        'model.layers.0.self_attn.q_proj',
        'model.layers.0.self_attn.v_proj',
        'model.layers.1.self_attn.q_proj',
        'model.layers.1.self_attn.v_proj',
      ]);
      expect(peft.adapterLayers().every(([, l]) => l instanceof LoraFaLayer)).toBe(true);
    }
    expect(() => loraFaModelFromConfigJson(tinyLlama(), { ...json, peft_type: 'VERA' })).toThrow(/LORA/);
    expect(() => loraFaModelFromConfigJson(tinyLlama(), '{r: 4')).toThrow(/not valid JSON/);
  });

  const cases: [string, () => CausalLM, LoraConfigInput][] = [
    [
      'GPT-2 (Conv1D), lora_dropout 0.1',
      tinyGpt2,
      { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_fc'], loraDropout: 0.1 },
    ],
    [
      'LLaMA (Linear), all-linear, rsLoRA',
      tinyLlama,
      { r: 4, loraAlpha: 4, targetModules: 'all-linear', useRslora: true },
    ],
  ];
  for (const [name, base, config] of cases) {
    it(`gives LoRA's loss and LoRA's gradient of every B, bit for bit, in training mode: ${name}`, () => {
      const init = { ...config, initLoraWeights: false }; // B ≠ 0: gradients flow everywhere
      const run = (technique: 'lora' | 'lora-fa') => {
        const { peft } = adapted(technique, init, base);
        peft.train();
        manualSeed(9); // the same dropout masks
        const loss = causalLMLoss(peft.model, tokens()).dataSync()[0]!;
        manualSeed(9);
        return { loss, grads: gradientsByName(peft, tokens()) };
      };
      const lora = run('lora');
      const fa = run('lora-fa');
      expect(fa.loss).toBe(lora.loss);
      const bs = [...fa.grads.keys()];
      expect(bs.length).toBeGreaterThan(0);
      expect(bs.every((n) => n.includes('.lora_B.'))).toBe(true);
      expect([...lora.grads.keys()].filter((n) => n.includes('.lora_B.'))).toEqual(bs);
      for (const n of bs) expect(maxAbsDiff(fa.grads.get(n)!, lora.grads.get(n)!), n).toBe(0);
    });
  }
});

describe('training', () => {
  for (const optimizer of ['lora-fa', 'adamw'] as const) {
    it(`keeps A bit-identical and changes B over Trainer steps (optimizer "${optimizer}")`, async () => {
      const { model, peft } = adapted('lora-fa', { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj'] });
      const a0 = values(peft, (n) => n.includes('lora_A'));
      const b0 = values(peft, (n) => n.includes('lora_B'));
      const base0 = values(peft, (n) => !n.includes('lora_'));
      const trainer = new Trainer({
        module: peft,
        loss: (ids: number[][]) => causalLMLoss(model, ids),
        optimizer: await createOptimizer(peft, { optimizer, lr: 0.02 }),
      });
      const losses: number[] = [];
      for (let step = 0; step < 4; step++) losses.push((await trainer.trainStep(tokens(2, 9, 1))).loss);
      trainer.dispose();
      for (const [n, v] of values(peft, (n) => n.includes('lora_A')))
        expect(Buffer.from(v.buffer).equals(Buffer.from(a0.get(n)!.buffer)), n).toBe(true);
      for (const [n, v] of values(peft, (n) => !n.includes('lora_')))
        expect(Buffer.from(v.buffer).equals(Buffer.from(base0.get(n)!.buffer)), n).toBe(true);
      for (const [n, v] of values(peft, (n) => n.includes('lora_B')))
        expect(maxAbsDiff(v, b0.get(n)!), n).toBeGreaterThan(1e-3);
      expect(losses[3]!).toBeLessThan(losses[0]!);
    });
  }
});

describe('adapter files', () => {
  async function trained() {
    const { model, peft } = adapted('lora-fa', {
      r: 4,
      loraAlpha: 16,
      targetModules: ['c_attn', 'c_fc'],
      taskType: 'CAUSAL_LM',
    });
    const optimizer = await LoraFaOptimizer.create(peft, { lr: 0.05 });
    const trainer = new Trainer({
      module: peft,
      loss: (ids: number[][]) => causalLMLoss(model, ids),
      optimizer,
    });
    for (let step = 0; step < 2; step++) await trainer.trainStep(tokens(2, 9, step + 3));
    trainer.dispose();
    peft.eval();
    return { model, peft };
  }

  it("writes LoRA's files (peft_type LORA, lora_A and lora_B) that @peft/lora loads with the same logits", async () => {
    const { model, peft } = await trained();
    const want = logits(model);
    dir = await mkdtemp(join(tmpdir(), 'lora-fa-'));
    await saveAdapter(peft, dir);
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 16,
      fan_in_fan_out: true,
      task_type: 'CAUSAL_LM',
    });
    const { tensors } = readSafetensors(await readFile(join(dir, 'adapter_model.safetensors')));
    expect([...tensors.keys()].sort()).toEqual(
      ['h.0.attn.c_attn', 'h.0.mlp.c_fc', 'h.1.attn.c_attn', 'h.1.mlp.c_fc'].flatMap((m) => [
        `base_model.model.transformer.${m}.lora_A.weight`,
        `base_model.model.transformer.${m}.lora_B.weight`,
      ]),
    );
    const fresh = tinyGpt2();
    const loaded = await loadAdapter(fresh, dir);
    expect(fresh.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(LoraLayer);
    expect(fresh.getSubmodule('transformer.h.0.attn.c_attn')).not.toBeInstanceOf(LoraFaLayer);
    expect(loaded.adapter('default').method.name).toBe('lora');
    loaded.eval();
    expect(maxAbsDiff(logits(fresh), want)).toBe(0);
  });

  it('loads LoRA files as a LoRA-FA adapter to go on training (loadLoraFaAdapter), all or nothing', async () => {
    const { model, peft } = await trained();
    const want = logits(model);
    const files = await adapterFiles(peft);
    const fresh = tinyGpt2();
    const resumed = loadLoraFaAdapter(fresh, files);
    expect(fresh.getSubmodule('transformer.h.1.mlp.c_fc')).toBeInstanceOf(LoraFaLayer);
    resumed.eval();
    expect(maxAbsDiff(logits(fresh), want)).toBe(0);
    expect(
      [...resumed.namedParameters()].filter(([, p]) => p.requiresGrad).every(([n]) => n.includes('lora_B')),
    ).toBe(true);
    // A file that does not fit leaves the model as it was.
    const other = tinyGpt2();
    const wrong = { ...files, config: files.config.replace('"r": 4', '"r": 2') };
    expect(() => loadLoraFaAdapter(other, wrong)).toThrow(/shape/);
    expect(other.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(Linear);
    expect([...other.namedParameters()].every(([, p]) => p.requiresGrad)).toBe(true);
  });

  it('merges, unmerges, disables and unloads like LoRA', async () => {
    const { model, peft } = await trained();
    const adaptedLogits = logits(model);
    const base = peft.withAdaptersDisabled(() => logits(model));
    expect(maxAbsDiff(adaptedLogits, base)).toBeGreaterThan(1e-3);
    peft.merge({ safe: true });
    expect(maxAbsDiff(logits(model), adaptedLogits)).toBeLessThan(1e-5);
    peft.unmerge();
    expect(maxAbsDiff(logits(model), adaptedLogits)).toBeLessThan(1e-5);
    const plain = peft.mergeAndUnload();
    expect(plain.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(Linear);
    expect(maxAbsDiff(logits(plain), adaptedLogits)).toBeLessThan(1e-5);
  });

  it('keeps LoRA and LoRA-FA adapters apart; a second LoRA-FA adapter trains alone when active', () => {
    const { peft } = adapted('lora-fa', { r: 4, targetModules: ['c_attn'] });
    expect(() => peft.addAdapter('plain', 'lora', loraConfig({ r: 2, targetModules: ['c_attn'] }))).toThrow(
      /already holds a "lora-fa" adapter/,
    );
    peft.addAdapter('second', 'lora-fa', loraConfig({ r: 2, targetModules: ['c_attn'] }));
    peft.setAdapter('second');
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.second.weight',
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.second.weight',
    ]);
  });
});
