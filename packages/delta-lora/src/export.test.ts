// The standard LoRA export: rank 2r on the ORIGINAL base weights reproduces the trained model; before
// the start step it is the plain LoRA adapter, byte for byte.
import {
  AdamW,
  adapterFiles,
  loadAdapterFiles,
  type PeftModel,
  Trainer,
  weightDecayGroups,
} from '@peft/core';
import { getLoraModel, type LoraLayer } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DeltaLoraConfigInput } from './config.js';
import { deltaLoraToLora, getDeltaLoraModel, loraExportFiles } from './index.js';
import { createOptimizer } from './optimizer.js';
import {
  batches,
  bitwiseEqual,
  logitsOf,
  snapshot,
  tinyGpt2,
  tinyLlama,
} from './test_models.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const MODELS = { gpt2: tinyGpt2, llama: tinyLlama } as const;
const SEED = 5;
const TOLERANCE = 1e-4;
const measured: string[] = [];

async function trained(
  kind: keyof typeof MODELS,
  config: DeltaLoraConfigInput,
  steps: number,
): Promise<PeftModel<CausalLM>> {
  const peft = getDeltaLoraModel(MODELS[kind](SEED), config);
  const trainer = new Trainer({
    module: peft,
    loss: (ids: number[][]) => causalLMLoss(peft.model, ids),
    optimizer: createOptimizer(peft, { lr: 0.05 }),
  });
  await trainer.train(batches(800, steps));
  peft.eval();
  return peft;
}

/** The export loaded by @peft/lora onto a fresh copy of the original base model. */
async function loadExport(kind: keyof typeof MODELS, peft: PeftModel): Promise<PeftModel<CausalLM>> {
  const files = await loraExportFiles(peft);
  return loadAdapterFiles(MODELS[kind](SEED) as CausalLM, files);
}

const CASES: [keyof typeof MODELS, string, DeltaLoraConfigInput][] = [
  ['gpt2', 'c_attn (Conv1D)', { r: 2, loraAlpha: 4, updateStartSteps: 1, initLoraWeights: 'gaussian' }],
  [
    'llama',
    'all-linear, rsLoRA, rank_pattern, alpha_pattern, modules_to_save',
    {
      r: 2,
      loraAlpha: 3,
      useRslora: true,
      targetModules: 'all-linear',
      rankPattern: { 'layers.1.self_attn.v_proj': 1, down_proj: 3 },
      alphaPattern: { o_proj: 5 },
      modulesToSave: ['lm_head'],
      deltaUpdateRatio: 1.5,
      updateStartSteps: 2,
    },
  ],
];

describe('deltaLoraToLora', () => {
  for (const [kind, what, config] of CASES) {
    it(`${kind}, ${what}: the rank-2r export on the original base reproduces the trained model`, async () => {
      const peft = await trained(kind, config, 6);
      const before = snapshot(peft);
      const tuned = logitsOf(peft.model);
      const { config: exported, tensors, rankDoubled } = deltaLoraToLora(peft);
      expect(rankDoubled).toBe(true);
      expect(exported).toMatchObject({
        peftType: 'LORA',
        r: 2 * config.r!,
        loraAlpha: 2 * config.r!,
        useRslora: false,
      });
      tf.dispose([...tensors.values()]);
      for (const [name, parameter] of peft.namedTensors()) {
        expect(bitwiseEqual(parameter.value, before.get(name)!), `${name} unchanged by the export`).toBe(
          true,
        );
      }

      const lora = await loadExport(kind, peft);
      expect(lora.adapter('default').method.name).toBe('lora');
      for (const [path, layer] of lora.adapterLayers() as [string, LoraLayer][]) {
        const deltaLayer = peft.model.getSubmodule(path) as LoraLayer;
        expect(layer.rank('default'), path).toBe(2 * deltaLayer.rank('default'));
        expect(layer.scaling('default'), path).toBe(1);
      }
      const diff = maxAbsDiff(logitsOf(lora.model), tuned);
      measured.push(`${kind} (${what}): ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(TOLERANCE);
      expect(maxAbsDiff(logitsOf(lora.model), logitsOf(MODELS[kind](SEED)))).toBeGreaterThan(1e-2);
      lora.merge();
      expect(maxAbsDiff(logitsOf(lora.model), tuned)).toBeLessThan(TOLERANCE);
    });
  }

  it('before the start step, exports the plain rank-r LoRA adapter, byte for byte', async () => {
    const steps = 3;
    const config = {
      r: 2,
      loraAlpha: 4,
      initLoraWeights: 'gaussian' as const,
      taskType: 'CAUSAL_LM' as const,
    };
    const delta = await trained('gpt2', { ...config, updateStartSteps: steps }, steps);
    const model = tinyGpt2(SEED);
    const lora = getLoraModel(model, config);
    const trainer = new Trainer({
      module: lora,
      loss: (ids: number[][]) => causalLMLoss(model, ids),
      optimizer: new AdamW(weightDecayGroups(lora), { lr: 0.05 }),
    });
    await trainer.train(batches(800, steps));
    lora.eval();

    const exported = deltaLoraToLora(delta);
    expect(exported.rankDoubled).toBe(false);
    tf.dispose([...exported.tensors.values()]);
    const ours = await loraExportFiles(delta, 'default', { baseModelNameOrPath: 'gpt2-tiny' });
    const plain = await adapterFiles(lora, 'default', { baseModelNameOrPath: 'gpt2-tiny' });
    expect(ours.config).toBe(plain.config);
    expect(Buffer.from(ours.weights).equals(Buffer.from(plain.weights))).toBe(true);
    const loaded = await loadExport('gpt2', delta);
    expect(bitwiseEqual(logitsOf(loaded.model), logitsOf(delta.model))).toBe(true);
  });

  it('refuses adapters of other techniques', () => {
    const lora = getLoraModel(tinyGpt2(1), { r: 2 });
    expect(() => deltaLoraToLora(lora)).toThrow(/not delta-lora/);
  });

  it('reports the measured differences', () => {
    console.log(
      `Delta-LoRA rank-2r export vs the trained model (max |difference| of logits):\n  ${measured.join('\n  ')}`,
    );
  });
});
