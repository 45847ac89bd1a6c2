// Parity with Hugging Face PEFT in both directions, on the tiny GPT-2 and LLaMA checkpoints of
// @peft/models: adapters saved by PEFT load here and give PEFT's logits; adapters saved here load in
// PEFT and give our logits (checked by fixtures/generate_fixtures.py, recorded in peft_check.json).
import '@tensorflow/tfjs-backend-cpu';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { logitsOf, maxAbsDiff } from '@peft/testing';
import { expectPeftCheck, expectPeftWrittenAdapters, loadAdapterFixture } from '@peft/testing/assertions';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import './index.js';
import type { LoraLayer } from './layer.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Largest difference per case, printed at the end for the record. */
const measured: string[] = [];

const peftCases = readdirSync(FIXTURES).filter((name) => name.startsWith('peft-'));

describe('adapters written by Hugging Face PEFT', () => {
  it('has the four committed cases', () => {
    expect(peftCases.sort()).toEqual([
      'peft-gpt2',
      'peft-gpt2-rslora',
      'peft-llama',
      'peft-llama-all-linear-rslora',
    ]);
  });

  for (const name of peftCases) {
    it(`${name}: loads, gives PEFT's logits (adapter, merged), and is written back byte for byte`, async () => {
      await expectPeftWrittenAdapters(name, join(FIXTURES, name), {
        tolerance: TOLERANCE,
        record: (adapter, diff) => measured.push(`${name}/${adapter}: ${diff.toExponential(2)}`),
      });
    });
  }

  it('applies rank_pattern / alpha_pattern and rsLoRA scaling as PEFT does', async () => {
    const { model } = await loadAdapterFixture(join(FIXTURES, 'peft-gpt2-rslora'));
    const c_attn1 = model.getSubmodule('transformer.h.1.attn.c_attn') as LoraLayer;
    const c_fc0 = model.getSubmodule('transformer.h.0.mlp.c_fc') as LoraLayer;
    expect(c_attn1.rank('default')).toBe(2);
    expect(c_attn1.scaling('default')).toBeCloseTo(4 / Math.sqrt(2), 12);
    expect(c_fc0.scaling('default')).toBeCloseTo(12 / Math.sqrt(8), 12);
  });
});

const oursCases = readdirSync(FIXTURES).filter((name) => name.startsWith('ours-'));

describe('adapters written by @peft/lora, loaded by Hugging Face PEFT', () => {
  it('has the committed cases', () => {
    expect(oursCases.sort()).toEqual(['ours-gpt2', 'ours-llama']);
  });

  for (const name of oursCases) {
    it(`${name}: PEFT's check is recorded for exactly these files, within ${TOLERANCE}`, async () => {
      const folder = join(FIXTURES, name);
      const check = expectPeftCheck(folder, {
        howToWrite: 'run fixtures/generate_fixtures.py --check-ours',
        tolerance: TOLERANCE,
        record: (adapter, diff) =>
          measured.push(`${name}/${adapter} (PEFT vs ours): ${diff.toExponential(2)}`),
      });
      // And we still compute the logits that PEFT confirmed.
      const { model, peft, expected } = await loadAdapterFixture(folder);
      expect(Object.keys(check.max_abs_diff).sort()).toEqual(Object.keys(expected.adapters).sort());
      for (const [adapter, { logits }] of Object.entries(expected.adapters)) {
        peft.setAdapter(adapter);
        expect(maxAbsDiff(logitsOf(model, expected.input_ids), tf.tensor(logits))).toBeLessThan(1e-5);
      }
    });
  }

  it('reports the measured differences', () => {
    console.log(`LoRA parity with PEFT (max |difference| of logits):\n  ${measured.join('\n  ')}`);
  });
});
