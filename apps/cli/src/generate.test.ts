import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@peft/core';
import { ByteTokenizer, createModel, type GenerateOptions, generate, type Tokenizer } from '@peft/models';
import { loadModel, loadTokenizer, saveModel } from '@peft/models/node';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_FIXTURES, peft, readExpected } from './test/run_cli.js';

let dir: string;
let byteDir: string;

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
  tf.env().set('PROD', true); // no "install tfjs-node" banner in the test log
  // A random LLaMA whose vocabulary is the metaspace BPE fixture tokenizer's (word-initial spaces).
  dir = mkdtempSync(join(tmpdir(), 'peft-cli-generate-'));
  const model = createModel({
    model_type: 'llama',
    vocab_size: 416,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 64,
    initializer_range: 0.5,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  await saveModel(model, dir);
  model.dispose();
  for (const file of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(`${MODEL_FIXTURES}/tokenizer-metaspace-bpe/${file}`, join(dir, file));
  // A random GPT-2 over UTF-8 bytes, as apps/demo trains.
  byteDir = mkdtempSync(join(tmpdir(), 'peft-cli-generate-bytes-'));
  const byteModel = createModel({
    model_type: 'gpt2',
    vocab_size: 256,
    n_embd: 16,
    n_head: 2,
    n_layer: 1,
    n_positions: 64,
    initializer_range: 0.5,
  });
  await saveModel(byteModel, byteDir);
  byteModel.dispose();
});

afterAll(() => {
  for (const d of [dir, byteDir]) rmSync(d, { recursive: true, force: true });
});

/** What `generate` should print for a text prompt: the continuation decoded in one piece. */
async function expectedText(
  modelDir: string,
  tokenizer: Tokenizer,
  prompt: string,
  options: GenerateOptions,
): Promise<string> {
  const model = await loadModel(modelDir);
  const ids = tokenizer.encode(prompt);
  const tokens = await generate(model, ids, options);
  model.dispose();
  const skip = { skipSpecialTokens: true };
  return `${tokenizer.decode([...ids, ...tokens], skip).slice(tokenizer.decode(ids, skip).length)}\n`;
}

describe('peft generate', () => {
  it("gives the fixtures' greedy tokens from transformers (--ids)", async () => {
    const names = ['gpt2-tiny', 'llama-tied-mqa'];
    const results = await Promise.all(
      names.map((name) => {
        const { prompt, max_new_tokens } = readExpected(name).generation;
        return peft(
          'generate',
          ...['--model', `${MODEL_FIXTURES}/${name}`, '--ids', prompt.join(',')],
          ...['--max-new-tokens', String(max_new_tokens), '--ignore-eos', '--backend', 'wasm'],
        );
      }),
    );
    for (const [i, name] of names.entries()) {
      const { prompt, greedy } = readExpected(name).generation;
      expect(results[i]!.stderr).toBe('');
      expect(results[i]!.code).toBe(0);
      expect(results[i]!.stdout).toBe(`${greedy.slice(prompt.length).join(',')}\n`);
    }
  });

  it('streams decoded text, greedy and sampled (seeded), with the folder tokenizer or UTF-8 bytes', async () => {
    const sampling = ['--temperature', '0.8', '--top-k', '50', '--top-p', '0.9', '--seed', '7'];
    const common = ['--max-new-tokens', '12', '--ignore-eos', '--backend', 'cpu'];
    const [greedy, sampled, bytes] = await Promise.all([
      peft('generate', '--model', dir, ...common, '--prompt', 'hello world'),
      peft('generate', '--model', dir, ...common, '--prompt', 'the tokenizer', ...sampling),
      peft('generate', '--model', byteDir, ...common, '--prompt', 'hi', '--tokenizer', 'byte'),
    ]);
    const tokenizer = await loadTokenizer(dir);
    const byOptions = { maxNewTokens: 12, eosTokenId: null };
    for (const result of [greedy, sampled, bytes]) {
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    }
    expect(greedy.stdout).toBe(await expectedText(dir, tokenizer, 'hello world', byOptions));
    expect(sampled.stdout).toBe(
      await expectedText(dir, tokenizer, 'the tokenizer', {
        ...byOptions,
        temperature: 0.8,
        topK: 50,
        topP: 0.9,
        seed: 7,
      }),
    );
    expect(bytes.stdout).toBe(await expectedText(byteDir, new ByteTokenizer(), 'hi', byOptions));
    expect(greedy.stdout.length).toBeGreaterThan(1);
  });
});
