// Parity with Hugging Face PEFT in both directions, on the tiny GPT-2 and LLaMA checkpoints of
// @peft/models: adapters saved by PEFT load here and give PEFT's logits; adapters saved here load in
// PEFT and give our logits (checked by fixtures/generate_fixtures.py, recorded in peft_check.json).
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adapterFiles, type PeftModel } from '@peft/core';
import { loadAdapter } from '@peft/core/node';
import type { CausalLM } from '@peft/models';
import { loadModel } from '@peft/models/node';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import './index.js';
import type { LoraLayer } from './layer.js';
import { maxAbsDiff } from './toy_model.test-support.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const MODELS = fileURLToPath(new URL('../../models/fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

interface Expected {
  base: string;
  base_sha256: string;
  input_ids: number[][];
  trainable_parameters?: { adapter: string; trainable: number; all: number };
  adapters: Record<string, { folder: string; logits: number[][][] }>;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const readExpected = (folder: string) =>
  JSON.parse(readFileSync(join(folder, 'expected.json'), 'utf8')) as Expected;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** The base model and the fixture's adapters loaded into it. */
async function loadFixture(
  folder: string,
): Promise<{ model: CausalLM; peft: PeftModel<CausalLM>; expected: Expected }> {
  const expected = readExpected(folder);
  const weights = join(MODELS, expected.base, 'model.safetensors');
  expect(sha256(weights), `${expected.base} changed since the fixture was generated`).toBe(
    expected.base_sha256,
  );
  const model = await loadModel(join(MODELS, expected.base));
  let peft: PeftModel<CausalLM> | null = null;
  for (const [name, { folder: sub }] of Object.entries(expected.adapters)) {
    peft = await loadAdapter(peft ?? model, join(folder, sub), { adapterName: name });
  }
  return { model, peft: peft!, expected };
}

function logitsOf(model: CausalLM, ids: number[][]): tf.Tensor {
  return model.forward({ inputIds: ids }).logits;
}

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
      const folder = join(FIXTURES, name);
      const { model, peft, expected } = await loadFixture(folder);
      for (const [adapter, { folder: sub, logits }] of Object.entries(expected.adapters)) {
        peft.setAdapter(adapter);
        const want = tf.tensor(logits);
        const diff = maxAbsDiff(logitsOf(model, expected.input_ids), want);
        measured.push(`${name}/${adapter}: ${diff.toExponential(2)}`);
        expect(diff, `${name}/${adapter}`).toBeLessThan(TOLERANCE);
        peft.merge();
        expect(
          maxAbsDiff(logitsOf(model, expected.input_ids), want),
          `${name}/${adapter} merged`,
        ).toBeLessThan(TOLERANCE);
        peft.unmerge();
        // Same files: our writer reproduces PEFT's adapter_config.json and adapter_model.safetensors.
        const files = await adapterFiles(peft, adapter);
        expect(files.config, `${name}/${adapter} config`).toBe(
          readFileSync(join(folder, sub, 'adapter_config.json'), 'utf8'),
        );
        const original = readFileSync(join(folder, sub, 'adapter_model.safetensors'));
        expect(Buffer.from(files.weights).equals(original), `${name}/${adapter} safetensors bytes`).toBe(
          true,
        );
      }
      const count = expected.trainable_parameters!;
      peft.setAdapter(count.adapter);
      expect(peft.countParameters()).toEqual({ trainable: count.trainable, all: count.all });
    });
  }

  it('applies rank_pattern / alpha_pattern and rsLoRA scaling as PEFT does', async () => {
    const { model } = await loadFixture(join(FIXTURES, 'peft-gpt2-rslora'));
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
      const checkFile = join(folder, 'peft_check.json');
      expect(existsSync(checkFile), 'run fixtures/generate_fixtures.py --check-ours').toBe(true);
      const check = JSON.parse(readFileSync(checkFile, 'utf8')) as {
        ok: boolean;
        files_sha256: Record<string, string>;
        max_abs_diff: Record<string, number>;
      };
      for (const [file, hash] of Object.entries(check.files_sha256)) {
        expect(sha256(join(folder, file)), `${file} changed after PEFT checked it`).toBe(hash);
      }
      expect(check.ok).toBe(true);
      for (const [adapter, diff] of Object.entries(check.max_abs_diff)) {
        measured.push(`${name}/${adapter} (PEFT vs ours): ${diff.toExponential(2)}`);
        expect(diff).toBeLessThan(TOLERANCE);
      }
      // And we still compute the logits that PEFT confirmed.
      const { model, peft, expected } = await loadFixture(folder);
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
