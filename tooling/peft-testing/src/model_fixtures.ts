// The tiny checkpoints committed by @peft/models (packages/models/fixtures/<base>) that every
// technique's PEFT-parity fixtures are built on, and the header each fixture's expected.json carries.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CausalLM } from '@peft/models';
import { loadModel } from '@peft/models/node';
import * as tf from '@tensorflow/tfjs-core';

/** packages/models/fixtures/ in this checkout. */
export const MODEL_FIXTURES = fileURLToPath(new URL('../../../packages/models/fixtures/', import.meta.url));

export function fileSha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** A model fixture of @peft/models by folder name (`gpt2-tiny`, `llama-gqa-untied`). */
export function loadFixtureModel(base: string): Promise<CausalLM> {
  return loadModel(join(MODEL_FIXTURES, base));
}

/** `base_model_name_or_path` of adapters saved on a model fixture: repository-relative, not this machine's. */
export function fixtureModelName(base: string): string {
  return `packages/models/fixtures/${base}`;
}

/** The fields an expected.json starts with: what wrote it, and the exact base model bytes it used. */
export function expectedHeader(base: string): {
  generator: Record<string, string>;
  base: string;
  base_sha256: string;
} {
  return {
    generator: { '@tensorflow/tfjs-core': tf.version_core, backend: tf.getBackend() },
    base,
    base_sha256: fileSha256(join(MODEL_FIXTURES, base, 'model.safetensors')),
  };
}

/** Logits as nested arrays with 8 significant digits (float32 carries ~7.2); disposes `logits`. */
export function roundedLogits(logits: tf.Tensor): number[][][] {
  const values = (logits.arraySync() as number[][][]).map((a) =>
    a.map((b) => b.map((v) => Number(v.toPrecision(8)))),
  );
  logits.dispose();
  return values;
}
