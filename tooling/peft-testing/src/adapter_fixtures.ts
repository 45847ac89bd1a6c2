// Adapter fixtures of a layer technique (`peft-*` written by Hugging Face PEFT, `ours-*` written here):
// a folder per case with the adapter files (the first adapter at the root, others in sub-folders) and
// expected.json with the logits of each adapter on the pinned base model.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { adapterFiles, type PeftModel } from '@peft/core';
import { loadAdapter } from '@peft/core/node';
import type { CausalLM } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { logitsOf } from './causal_lm.js';
import { maxAbsDiff } from './max_abs_diff.js';
import { loadPinnedFixtureModel } from './peft_check.js';

/** A case's expected.json. */
export interface AdapterFixture {
  base: string;
  base_sha256: string;
  input_ids: number[][];
  /** PEFT's `get_nb_trainable_parameters` with `adapter` active (PEFT-written cases). */
  trainable_parameters?: { adapter: string; trainable: number; all: number };
  adapters: Record<string, { folder: string; logits: number[][][] }>;
}

/** The pinned base model with every adapter of the case in `folder` loaded into it. */
export async function loadAdapterFixture<E extends AdapterFixture = AdapterFixture>(
  folder: string,
): Promise<{ model: CausalLM; peft: PeftModel<CausalLM>; expected: E }> {
  const expected = JSON.parse(readFileSync(join(folder, 'expected.json'), 'utf8')) as E;
  const model = await loadPinnedFixtureModel(expected);
  let peft: PeftModel<CausalLM> | null = null;
  for (const [name, { folder: sub }] of Object.entries(expected.adapters)) {
    peft = await loadAdapter(peft ?? model, join(folder, sub), { adapterName: name });
  }
  return { model, peft: peft!, expected };
}

/**
 * A case written by PEFT loads here and gives PEFT's logits for every adapter, also merged; our
 * writer gives back PEFT's files byte for byte; the parameter count is PEFT's. `record` gets each
 * adapter's largest logit difference.
 */
export async function expectPeftWrittenAdapters(
  name: string,
  folder: string,
  options: { tolerance: number; record(adapter: string, diff: number): void },
): Promise<void> {
  const { model, peft, expected } = await loadAdapterFixture(folder);
  for (const [adapter, { folder: sub, logits }] of Object.entries(expected.adapters)) {
    peft.setAdapter(adapter);
    const want = tf.tensor(logits);
    const diff = maxAbsDiff(logitsOf(model, expected.input_ids), want);
    options.record(adapter, diff);
    expect(diff, `${name}/${adapter}`).toBeLessThan(options.tolerance);
    peft.merge();
    expect(maxAbsDiff(logitsOf(model, expected.input_ids), want), `${name}/${adapter} merged`).toBeLessThan(
      options.tolerance,
    );
    peft.unmerge();
    // Same files: our writer reproduces PEFT's adapter_config.json and adapter_model.safetensors.
    const files = await adapterFiles(peft, adapter);
    expect(files.config, `${name}/${adapter} config`).toBe(
      readFileSync(join(folder, sub, 'adapter_config.json'), 'utf8'),
    );
    const original = readFileSync(join(folder, sub, 'adapter_model.safetensors'));
    expect(Buffer.from(files.weights).equals(original), `${name}/${adapter} safetensors bytes`).toBe(true);
  }
  const count = expected.trainable_parameters!;
  peft.setAdapter(count.adapter);
  expect(peft.countParameters()).toEqual({ trainable: count.trainable, all: count.all });
}
