// Parity with Hugging Face PEFT on the tiny GPT-2 and LLaMA checkpoints of @peft/models: a Delta-LoRA
// adapter trained here, exported as a rank-2r LoRA adapter, gives the trained model's logits in PEFT
// on the original base model (checked by fixtures/check_peft.py, recorded in peft_check.json) and
// here with @peft/lora; the native form loads back to the same model and exports to the same bytes.
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAdapter } from '@peft/core/node';
import type { LoraLayer } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { expectPeftCheck, loadPinnedFixtureModel, type PeftCheck } from '@peft/testing/assertions';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loraExportFiles } from './export.js';
import './index.js';
import { maxAbsDiff } from '@peft/testing';
import type { DeltaLoraLayer } from './layer.js';
import { singularValues, toFloat64Rows } from './test_models.test-support.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

interface Expected {
  base: string;
  base_sha256: string;
  input_ids: number[][];
  logits: number[][][];
}

const cases = readdirSync(FIXTURES).filter((name) => existsSync(join(FIXTURES, name, 'expected.json')));
const measured: string[] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function baseModel(expected: Expected): Promise<CausalLM> {
  return (await loadPinnedFixtureModel(expected)).eval();
}

describe('Delta-LoRA exported as LoRA, in Hugging Face PEFT and here', () => {
  it('has the committed cases', () => {
    expect(cases.sort()).toEqual(['gpt2', 'llama']);
  });

  for (const name of cases) {
    const folder = join(FIXTURES, name);
    const expected = JSON.parse(readFileSync(join(folder, 'expected.json'), 'utf8')) as Expected;

    it(`${name}: PEFT's logits on the rank-2r export match the trained model's (recorded for exactly these files)`, () => {
      expectPeftCheck<PeftCheck & { r: number }>(folder, {
        howToWrite: 'run fixtures/check_peft.py',
        tolerance: TOLERANCE,
        record: (what, diff) => measured.push(`${name}, PEFT ${what} vs ours: ${diff.toExponential(2)}`),
      });
    });

    it(`${name}: the export loads with @peft/lora onto the original base and gives the trained model's logits`, async () => {
      const model = await baseModel(expected);
      const peft = await loadAdapter(model, join(folder, 'lora'));
      expect(peft.adapter('default').method.name).toBe('lora');
      const diff = maxAbsDiff(
        model.forward({ inputIds: expected.input_ids }).logits,
        tf.tensor(expected.logits),
      );
      measured.push(`${name}, @peft/lora on the export vs the trained model: ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(TOLERANCE);
      for (const [path, layer] of peft.adapterLayers() as [string, LoraLayer][]) {
        expect(layer.scaling('default'), path).toBe(1);
      }
    });

    it(`${name}: the native adapter loads as the trained model, its W changes have rank <= 2r, and it exports to the committed files`, async () => {
      const model = await baseModel(expected);
      const peft = await loadAdapter(model, join(folder, 'native'));
      expect(peft.adapter('default').method.name).toBe('delta-lora');
      const diff = maxAbsDiff(
        model.forward({ inputIds: expected.input_ids }).logits,
        tf.tensor(expected.logits),
      );
      measured.push(`${name}, native adapter vs the trained model: ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-5);
      for (const [path, layer] of peft.adapterLayers() as [string, DeltaLoraLayer][]) {
        const sigma = singularValues(toFloat64Rows(layer.deltaState('default')!.weightDelta));
        const rank = 2 * layer.rank('default');
        expect(sigma[rank - 1]! / sigma[0]!, `${path}: rank 2r`).toBeGreaterThan(1e-6);
        for (const value of sigma.slice(rank)) expect(value / sigma[0]!, path).toBeLessThan(1e-5);
      }
      const files = await loraExportFiles(peft);
      expect(files.config).toBe(readFileSync(join(folder, 'lora', 'adapter_config.json'), 'utf8'));
      const committed = readFileSync(join(folder, 'lora', 'adapter_model.safetensors'));
      expect(Buffer.from(files.weights).equals(committed), 'export bytes').toBe(true);
    });
  }

  it('reports the measured differences', () => {
    console.log(`Delta-LoRA parity (max |difference| of logits):\n  ${measured.join('\n  ')}`);
  });
});
