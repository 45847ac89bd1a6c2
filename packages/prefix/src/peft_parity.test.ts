// Parity with Hugging Face PEFT in both directions, on the tiny GPT-2 and grouped-query LLaMA
// checkpoints of @peft/models: prefixes saved by PEFT load here and give PEFT's logits (plain, padded,
// explicit positions) and PEFT's greedy generation; prefixes saved here load in PEFT and give our
// logits (checked by fixtures/generate_fixtures.py, recorded in peft_check.json).
import '@tensorflow/tfjs-backend-cpu';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adapterFiles, getPeftModel, type PeftModel, readSafetensorsAsTensors } from '@peft/core';
import { loadAdapter } from '@peft/core/node';
import { type CausalLM, generate } from '@peft/models';
import { maxAbsDiff } from '@peft/testing';
import { expectPeftCheck, loadPinnedFixtureModel } from '@peft/testing/assertions';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePrefixTuningConfig } from './config.js';
import './index.js';
import { PrefixEncoder } from './layer.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const TOLERANCE = 1e-4;

interface LogitsCase {
  input_ids: number[][];
  attention_mask?: number[][];
  position_ids?: number[][];
  logits: number[][][];
}

interface PeftExpected {
  base: string;
  base_sha256: string;
  trainable_parameters: { trainable: number; all: number };
  plain: LogitsCase;
  padded: LogitsCase;
  positions: LogitsCase;
  generation: { prompts: number[][]; pad_token_id: number; tokens: number[][]; min_margin: number };
}

const readJson = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function loadBase(expected: { base: string; base_sha256: string }): Promise<CausalLM> {
  return (await loadPinnedFixtureModel(expected)).eval();
}

function logitsOf(model: CausalLM, c: LogitsCase): tf.Tensor {
  return model.forward({
    inputIds: c.input_ids,
    ...(c.attention_mask ? { attentionMask: c.attention_mask } : {}),
    ...(c.position_ids ? { positionIds: c.position_ids } : {}),
  }).logits;
}

/** Largest difference per case, printed at the end for the record. */
const measured: string[] = [];

const peftCases = readdirSync(FIXTURES).filter((name) => name.startsWith('peft-'));

describe('prefixes written by Hugging Face PEFT', () => {
  it('has the four committed cases', () => {
    expect(peftCases.sort()).toEqual([
      'peft-gpt2',
      'peft-gpt2-projection',
      'peft-llama',
      'peft-llama-projection',
    ]);
  });

  for (const name of peftCases) {
    it(`${name}: gives PEFT's logits (plain, padded, explicit positions) and greedy tokens; files round-trip`, async () => {
      const folder = join(FIXTURES, name);
      const expected = readJson<PeftExpected>(join(folder, 'expected.json'));
      const model = await loadBase(expected);
      const peft = await loadAdapter(model, folder);
      expect(peft.activeAdapter).toBe('default');
      expect(peft.countParameters().trainable).toBe(0); // loaded in inference mode, as PEFT
      for (const kind of ['plain', 'padded', 'positions'] as const) {
        const logits = logitsOf(model, expected[kind]);
        const diff = maxAbsDiff(logits, expected[kind].logits);
        logits.dispose();
        measured.push(`${name} ${kind}: ${diff.toExponential(2)}`);
        expect(diff, `${name} ${kind}`).toBeLessThan(TOLERANCE);
      }
      const { prompts, pad_token_id, tokens } = expected.generation;
      expect(
        await generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, padTokenId: pad_token_id }),
      ).toEqual(tokens);
      // Our writer gives back PEFT's adapter_config.json and the same tensor.
      const files = await adapterFiles(peft);
      expect(files.config).toBe(readFileSync(join(folder, 'adapter_config.json'), 'utf8'));
      const ours = readSafetensorsAsTensors(files.weights).tensors;
      const theirs = readSafetensorsAsTensors(
        readFileSync(join(folder, 'adapter_model.safetensors')),
      ).tensors;
      expect([...ours.keys()]).toEqual(['prompt_embeddings']);
      expect(maxAbsDiff(ours.get('prompt_embeddings')!, theirs.get('prompt_embeddings')!)).toBe(0);
      tf.dispose([...ours.values(), ...theirs.values()]);
      peft.dispose();
    });

    it(`${name}: a fresh training-mode adapter has PEFT's parameter count`, async () => {
      const folder = join(FIXTURES, name);
      const expected = readJson<PeftExpected>(join(folder, 'expected.json'));
      const model = await loadBase(expected);
      const config = readJson<Record<string, unknown>>(join(folder, 'adapter_config.json'));
      const peft = getPeftModel(model, 'prefix', {
        ...parsePrefixTuningConfig(config),
        inferenceMode: false,
      });
      expect(peft.countParameters()).toEqual(expected.trainable_parameters);
      peft.dispose();
    });
  }

  for (const name of peftCases.filter((n) => n.endsWith('-projection'))) {
    it(`${name}: PEFT's training-mode encoder (Embedding, Linear, Tanh, Linear) gives PEFT's logits and saved tensor`, async () => {
      const folder = join(FIXTURES, name);
      const expected = readJson<PeftExpected>(join(folder, 'expected.json'));
      const model = await loadBase(expected);
      const config = parsePrefixTuningConfig(readJson(join(folder, 'adapter_config.json')));
      const peft: PeftModel<CausalLM> = getPeftModel(model, 'prefix', { ...config, inferenceMode: false });
      const state = readSafetensorsAsTensors(readFileSync(join(folder, 'encoder_state.safetensors'))).tensors;
      // PEFT's parameter names are ours.
      const names = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n);
      expect(names.sort()).toEqual([...state.keys()].sort());
      peft.loadStateDict(state, { strict: false });
      const encoder = peft.getSubmodule('prompt_encoder.default') as PrefixEncoder;
      expect(encoder).toBeInstanceOf(PrefixEncoder);
      expect(encoder.prefixProjection).toBe(true);
      const logits = logitsOf(model, expected.plain);
      const diff = maxAbsDiff(logits, expected.plain.logits);
      measured.push(`${name} training-mode projection: ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(TOLERANCE);
      // Saving stores the projected embeddings: PEFT's prompt_embeddings.
      const saved = peft.adapterStateDict().get('prompt_embeddings')!;
      const theirs = readSafetensorsAsTensors(
        readFileSync(join(folder, 'adapter_model.safetensors')),
      ).tensors;
      expect(maxAbsDiff(saved, theirs.get('prompt_embeddings')!)).toBeLessThan(1e-5);
      tf.dispose([logits, ...state.values(), ...theirs.values()]);
      peft.dispose();
    });
  }
});

interface OursExpected {
  base: string;
  base_sha256: string;
  input_ids: number[][];
  attention_mask: number[][];
  adapters: Record<string, { folder: string; logits: number[][][] }>;
}

const oursCases = readdirSync(FIXTURES).filter((name) => name.startsWith('ours-'));

describe('prefixes written by @peft/prefix, loaded by Hugging Face PEFT', () => {
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
      // And we still compute, from the files, the logits that PEFT confirmed.
      const expected = readJson<OursExpected>(join(folder, 'expected.json'));
      expect(Object.keys(check.max_abs_diff).sort()).toEqual(Object.keys(expected.adapters).sort());
      const model = await loadBase(expected);
      let peft: PeftModel<CausalLM> | null = null;
      for (const [adapter, { folder: sub }] of Object.entries(expected.adapters)) {
        peft = await loadAdapter(peft ?? model, join(folder, sub), { adapterName: adapter });
      }
      for (const [adapter, { logits }] of Object.entries(expected.adapters)) {
        peft!.setAdapter(adapter);
        const ours = logitsOf(model, { ...expected, logits });
        expect(maxAbsDiff(ours, logits)).toBeLessThan(1e-5);
        ours.dispose();
      }
      peft!.dispose();
    });
  }

  it('reports the measured differences', () => {
    console.log(`Prefix tuning parity with PEFT (max |difference| of logits):\n  ${measured.join('\n  ')}`);
  });
});
