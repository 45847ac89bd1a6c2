// Parity with Hugging Face PEFT in both directions, on the tiny GPT-2 and LLaMA checkpoints of
// @peft/models: adapters saved by PEFT load here and give PEFT's logits; adapters saved here load in
// PEFT and give our logits (checked by fixtures/generate_fixtures.py, recorded in peft_check.json).
// The projections we draw from `projection_prng_key` are PEFT's (torch's generator), bit for bit,
// which is what lets a `save_projection=False` adapter load at all.
import '@tensorflow/tfjs-backend-cpu';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { logitsOf, maxAbsDiff } from '@peft/testing';
import {
  type AdapterFixture,
  expectPeftCheck,
  expectPeftWrittenAdapters,
  loadAdapterFixture,
} from '@peft/testing/assertions';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { VeraConfig } from './config.js';
import { drawProjections, type SharedProjection } from './model.js';
import './index.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

interface Expected extends AdapterFixture {
  projections?: Record<'vera_A' | 'vera_B', { shape: number[]; sha256: string }>;
}

const tensorSha256 = (tensor: tf.Tensor) => {
  const values = tensor.dataSync() as Float32Array;
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return createHash('sha256').update(bytes).digest('hex');
};

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
      'peft-gpt2-no-projection',
      'peft-llama',
      'peft-llama-all-linear',
    ]);
  });

  for (const name of peftCases) {
    it(`${name}: loads, gives PEFT's logits (adapter, merged), and is written back byte for byte`, async () => {
      await expectPeftWrittenAdapters(name, join(FIXTURES, name), {
        tolerance: TOLERANCE,
        record: (adapter, diff) => measured.push(`${name}/${adapter}: ${diff.toExponential(2)}`),
      });
    });

    it(`${name}: the projections in the model are the ones PEFT drew, and ours from the key are the same bits`, async () => {
      const { peft, expected } = await loadAdapterFixture<Expected>(join(FIXTURES, name));
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
      const check = expectPeftCheck(folder, {
        howToWrite: 'run fixtures/generate_fixtures.py --check-ours',
        tolerance: TOLERANCE,
        record: (adapter, diff) =>
          measured.push(`${name}/${adapter} (PEFT vs ours): ${diff.toExponential(2)}`),
      });
      // And we still compute the logits that PEFT confirmed, which are not the base model's.
      const { model, peft, expected } = await loadAdapterFixture<Expected>(folder);
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
