// Parity with Hugging Face PEFT's LoRA-FA (`create_lorafa_optimizer`) in both directions, on the tiny
// GPT-2 and LLaMA checkpoints of @peft/models: an adapter PEFT trained loads here with PEFT's logits,
// our optimizer replays PEFT's training run step by step, and an adapter we trained loads in PEFT
// with our logits (checked by fixtures/generate_fixtures.py, recorded in peft_check.json).
import '@tensorflow/tfjs-backend-cpu';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type PeftModel, readSafetensors } from '@peft/core';
import { loadAdapter } from '@peft/core/node';
import { LoraLayer } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, logitsOf, maxAbsDiff } from '@peft/testing';
import { expectPeftCheck, loadPinnedFixtureModel, type PeftCheck } from '@peft/testing/assertions';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { LoraFaLayer, LoraFaOptimizer, loadLoraFaAdapter } from './index.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

interface Expected {
  base: string;
  base_sha256: string;
  input_ids: number[][];
  adapters: Record<string, { folder: string; logits: number[][][] }>;
  optimizer?: { lr: number; weight_decay: number; betas: [number, number]; eps: number };
  batches?: number[][][];
  losses?: { bf16: number[]; float32: number[] };
}

const readExpected = (folder: string) =>
  JSON.parse(readFileSync(join(folder, 'expected.json'), 'utf8')) as Expected;
const files = (folder: string) => ({
  config: readFileSync(join(folder, 'adapter_config.json'), 'utf8'),
  weights: readFileSync(join(folder, 'adapter_model.safetensors')),
});

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** max |a − b| / max |b|. */
function relative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let norm = 0;
  for (let i = 0; i < b.length; i++) norm = Math.max(norm, Math.abs(b[i]!));
  return maxAbsDiff(a, b) / norm;
}

/** ‖a − b‖ / ‖b‖ (Frobenius). */
function relativeNorm(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

const measured: string[] = [];
const PEFT_FOLDER = join(FIXTURES, 'peft-lorafa-gpt2');

describe('an adapter trained by PEFT with create_lorafa_optimizer', () => {
  const expected = readExpected(PEFT_FOLDER);
  const want = tf.tensor(expected.adapters.default!.logits);

  it('kept A exactly as initialised (the fixture is a LoRA-FA run)', () => {
    const initial = readSafetensors(files(join(PEFT_FOLDER, 'initial')).weights).tensors;
    const trained = readSafetensors(files(PEFT_FOLDER).weights).tensors;
    const keys = [...trained.keys()];
    expect(keys.filter((k) => k.includes('lora_A'))).toHaveLength(4);
    for (const key of keys) {
      const same = Buffer.from(trained.get(key)!.data.buffer).equals(
        Buffer.from(initial.get(key)!.data.buffer),
      );
      expect(same, key).toBe(key.includes('lora_A'));
    }
  });

  it("loads as LoRA (loadAdapter, @peft/lora) and as LoRA-FA (loadLoraFaAdapter) with PEFT's logits, also merged", async () => {
    const asLora = await loadAdapter(await loadPinnedFixtureModel(expected), PEFT_FOLDER);
    const loraModel = asLora.model;
    expect(loraModel.getSubmodule('transformer.h.0.attn.c_attn')).toBeInstanceOf(LoraLayer);
    const loraDiff = maxAbsDiff(logitsOf(loraModel, expected.input_ids), want);
    const faModel = await loadPinnedFixtureModel(expected);
    const asFa = loadLoraFaAdapter(faModel, files(PEFT_FOLDER));
    asFa.eval();
    expect(faModel.getSubmodule('transformer.h.1.mlp.c_fc')).toBeInstanceOf(LoraFaLayer);
    const faLogits = logitsOf(faModel, expected.input_ids);
    measured.push(
      `PEFT LoRA-FA adapter, logits (ours vs PEFT): ${maxAbsDiff(faLogits, want).toExponential(2)}`,
    );
    expect(loraDiff).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(faLogits, logitsOf(loraModel, expected.input_ids))).toBe(0);
    asFa.merge();
    expect(maxAbsDiff(logitsOf(faModel, expected.input_ids), want)).toBeLessThan(TOLERANCE);
  });

  it("replays PEFT's training run from the initial adapter: losses, first moments and every B, step by step", async () => {
    const { optimizer: hyper, batches, losses } = expected;
    const model = await loadPinnedFixtureModel(expected);
    const peft: PeftModel<CausalLM> = loadLoraFaAdapter(model, files(join(PEFT_FOLDER, 'initial')));
    peft.eval(); // as the fixture: the base's dropout off
    const optimizer = await LoraFaOptimizer.create(peft, { lr: hyper!.lr, weightDecay: hyper!.weight_decay });
    const trajectory = readSafetensors(readFileSync(join(PEFT_FOLDER, 'trajectory.safetensors'))).tensors;
    const bs = [...peft.namedParameters()].filter(([n]) => n.includes('lora_B'));
    const worst = { loss: 0, float32: 0, bf16: 0, peftBf16: 0, expAvg: 0 };
    for (const [index, ids] of batches!.entries()) {
      const step = index + 1;
      const { value, grads } = tf.variableGrads(
        () => causalLMLoss(model, ids),
        bs.map(([, p]) => p.variable),
      );
      worst.loss = Math.max(worst.loss, Math.abs(value.dataSync()[0]! - losses!.float32[index]!));
      optimizer.step(new Map(bs.map(([, p]) => [p, grads[p.variable.name]!])));
      tf.dispose([value, ...Object.values(grads)]);
      const state = optimizer.getState().tensors;
      for (const [name, p] of bs) {
        const ours = p.value.dataSync();
        worst.float32 = Math.max(
          worst.float32,
          relative(ours, trajectory.get(`float32.step${step}.${name}`)!.data as Float32Array),
        );
        // PEFT's default run projects under bf16 autocast: compare in norm, next to PEFT's own float32 run.
        const bf16 = trajectory.get(`bf16.step${step}.${name}`)!.data as Float32Array;
        const float32 = trajectory.get(`float32.step${step}.${name}`)!.data as Float32Array;
        worst.bf16 = Math.max(worst.bf16, relativeNorm(ours, bf16));
        worst.peftBf16 = Math.max(worst.peftBf16, relativeNorm(float32, bf16));
        const peftMoment = trajectory.get(`float32.step${step}.exp_avg_B.${name}`);
        if (peftMoment) {
          const key = `${name.slice(0, name.indexOf('lora'))}lora.exp_avg_B`;
          worst.expAvg = Math.max(
            worst.expAvg,
            relative(state.get(key)!.dataSync(), peftMoment.data as Float32Array),
          );
        }
      }
    }
    optimizer.dispose();
    measured.push(
      `replay of PEFT's ${batches!.length} LoRA-FA steps: loss |Δ| ${worst.loss.toExponential(2)}, ` +
        `exp_avg_B rel ${worst.expAvg.toExponential(2)}, B rel vs PEFT float32 ${worst.float32.toExponential(2)}, ` +
        `‖B − B_PEFT bf16‖/‖B_PEFT bf16‖ ${worst.bf16.toExponential(2)} (PEFT's own float32 run: ${worst.peftBf16.toExponential(2)})`,
    );
    expect(worst.loss).toBeLessThan(1e-5);
    expect(worst.expAvg).toBeLessThan(1e-4);
    expect(worst.float32).toBeLessThan(1e-3);
    // PEFT projects under bf16 autocast by default: we are as close to that run as PEFT's float32 run is.
    expect(worst.bf16).toBeLessThan(worst.peftBf16 + 1e-3);
  });
});

describe('an adapter trained by @peft/lora-fa, loaded by Hugging Face PEFT', () => {
  const folder = join(FIXTURES, 'ours-lorafa-llama');

  it(`PEFT's check is recorded for exactly these files, within ${TOLERANCE}, and PEFT went on training it`, async () => {
    const check = expectPeftCheck<PeftCheck & { continued_training_with_create_lorafa_optimizer: boolean }>(
      folder,
      {
        howToWrite: 'run fixtures/generate_fixtures.py --check-ours',
        tolerance: TOLERANCE,
        record: (_, diff) =>
          measured.push(`our LoRA-FA adapter in PEFT, logits (PEFT vs ours): ${diff.toExponential(2)}`),
      },
    );
    expect(Object.keys(check.max_abs_diff)).toEqual(['default']);
    expect(check.continued_training_with_create_lorafa_optimizer).toBe(true);
    // And we still compute the logits PEFT confirmed.
    const expected = readExpected(folder);
    const model = await loadPinnedFixtureModel(expected);
    (await loadAdapter(model, folder)).eval();
    expect(
      maxAbsDiff(logitsOf(model, expected.input_ids), tf.tensor(expected.adapters.default!.logits)),
    ).toBeLessThan(1e-5);
  });

  it('reports the measured differences', () => {
    console.log(`LoRA-FA parity with PEFT:\n  ${measured.join('\n  ')}`);
  });
});
