// Parity with Hugging Face PEFT in both directions, on the tiny GPT-2 and LLaMA checkpoints of
// @peft/models: adapters saved by PEFT load here and give PEFT's logits; adapters saved here load in
// PEFT and give our logits (checked by fixtures/generate_fixtures.py, recorded in peft_check.json).
// The projections we draw from `projection_prng_key` are PEFT's (torch's generator), bit for bit,
// which is what lets a `save_projection=False` adapter load at all.
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
import type { VeraConfig } from './config.js';
import { drawProjections, type SharedProjection } from './model.js';
import { maxAbsDiff } from './toy_model.test-support.js';
import './index.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const MODELS = fileURLToPath(new URL('../../models/fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

interface Expected {
  base: string;
  base_sha256: string;
  input_ids: number[][];
  trainable_parameters?: { adapter: string; trainable: number; all: number };
  projections?: Record<'vera_A' | 'vera_B', { shape: number[]; sha256: string }>;
  adapters: Record<string, { folder: string; logits: number[][][] }>;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const fileSha256 = (path: string) => sha256(readFileSync(path));
const tensorSha256 = (tensor: tf.Tensor) => {
  const values = tensor.dataSync() as Float32Array;
  return sha256(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
};
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
  expect(fileSha256(weights), `${expected.base} changed since the fixture was generated`).toBe(
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
      'peft-gpt2-no-projection',
      'peft-llama',
      'peft-llama-all-linear',
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

    it(`${name}: the projections in the model are the ones PEFT drew, and ours from the key are the same bits`, async () => {
      const { peft, expected } = await loadFixture(join(FIXTURES, name));
      const first = Object.keys(expected.adapters)[0]!;
      const config = peft.adapter(first).config as VeraConfig;
      const a = (peft.getSubmodule('base_model.vera_A') as SharedProjection).get(first)!.value;
      const b = (peft.getSubmodule('base_model.vera_B') as SharedProjection).get(first)!.value;
      const { vera_A, vera_B } = expected.projections!;
      expect(a.shape).toEqual(vera_A.shape);
      expect(b.shape).toEqual(vera_B.shape);
      // Loaded from the file, or (save_projection=False) drawn here from projection_prng_key.
      expect(tensorSha256(a)).toBe(vera_A.sha256);
      expect(tensorSha256(b)).toBe(vera_B.sha256);
      const drawn = drawProjections(config.projectionPrngKey, config.r, a.shape[1]!, b.shape[0]!);
      expect(tensorSha256(drawn.a)).toBe(vera_A.sha256);
      expect(tensorSha256(drawn.b)).toBe(vera_B.sha256);
    });
  }

  it('peft-gpt2-no-projection holds no projections: they can only come from our copy of torch’s generator', () => {
    const folder = join(FIXTURES, 'peft-gpt2-no-projection');
    const config = JSON.parse(readFileSync(join(folder, 'adapter_config.json'), 'utf8'));
    expect(config.save_projection).toBe(false);
    const header = readFileSync(join(folder, 'adapter_model.safetensors'));
    const keys = Object.keys(
      JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString()),
    );
    expect(keys.filter((k) => k !== '__metadata__').every((k) => k.includes('.vera_lambda_'))).toBe(true);
  });
});

const oursCases = readdirSync(FIXTURES).filter((name) => name.startsWith('ours-'));

describe('adapters written by @peft/vera, loaded by Hugging Face PEFT', () => {
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
        expect(fileSha256(join(folder, file)), `${file} changed after PEFT checked it`).toBe(hash);
      }
      expect(check.ok).toBe(true);
      for (const [adapter, diff] of Object.entries(check.max_abs_diff)) {
        measured.push(`${name}/${adapter} (PEFT vs ours): ${diff.toExponential(2)}`);
        expect(diff).toBeLessThan(TOLERANCE);
      }
      // And we still compute the logits that PEFT confirmed, which are not the base model's.
      const { model, peft, expected } = await loadFixture(folder);
      expect(Object.keys(check.max_abs_diff).sort()).toEqual(Object.keys(expected.adapters).sort());
      const base = peft.withAdaptersDisabled(() => logitsOf(model, expected.input_ids));
      for (const [adapter, { logits }] of Object.entries(expected.adapters)) {
        peft.setAdapter(adapter);
        expect(maxAbsDiff(logitsOf(model, expected.input_ids), tf.tensor(logits))).toBeLessThan(1e-5);
        expect(maxAbsDiff(base, tf.tensor(logits)), `${name}/${adapter} is not a no-op`).toBeGreaterThan(
          1e-3,
        );
      }
    });
  }

  it('reports the measured differences', () => {
    console.log(`VeRA parity with PEFT (max |difference| of logits):\n  ${measured.join('\n  ')}`);
  });
});
