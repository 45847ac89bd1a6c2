import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { causalLMLoss } from './causal_lm_loss.js';
import { generate } from './generate.js';
import { loadModel } from './node/index.js';
import {
  fixtureDir,
  MODEL_FIXTURES,
  maxAbsDiffAtMask,
  readExpected,
  useCpuBackend,
} from './test-support/fixtures.js';

beforeAll(useCpuBackend);

describe.each(MODEL_FIXTURES)('%s against transformers', (name) => {
  const expected = readExpected(name);

  it('gives the reference logits (max abs diff <= 1e-4)', async () => {
    const model = await loadModel(fixtureDir(name));
    expect(model.modelType).toBe(expected.model_type);
    for (const c of expected.cases) {
      const { logits } = model.forward({
        inputIds: c.input_ids,
        attentionMask: c.attention_mask,
        ...(c.position_ids ? { positionIds: c.position_ids } : {}),
      });
      const diff = maxAbsDiffAtMask(logits.arraySync() as number[][][], c.logits, c.attention_mask);
      logits.dispose();
      console.log(`parity ${name} ${c.name}: max abs diff ${diff.toExponential(2)}`);
      expect(diff).toBeLessThanOrEqual(1e-4);
    }
    model.dispose();
  });

  it("gives transformers' loss with labels, -100 ignored (relative diff <= 1e-5)", async () => {
    const model = await loadModel(fixtureDir(name));
    const { input_ids, labels, loss } = expected.loss;
    const before = tf.memory().numTensors;
    const ours = tf.tidy(() => causalLMLoss(model, input_ids, labels).dataSync()[0]!);
    expect(tf.memory().numTensors).toBe(before);
    expect(Math.abs(ours - loss) / loss).toBeLessThanOrEqual(1e-5);
    // Every label counted is a different loss: the -100s are what was left out.
    const all = tf.tidy(() => causalLMLoss(model, input_ids).dataSync()[0]!);
    expect(Math.abs(all - loss)).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('generates the reference greedy tokens, with and without the KV cache', async () => {
    const model = await loadModel(fixtureDir(name));
    const { prompt, max_new_tokens, greedy } = expected.generation;
    const before = tf.memory().numTensors;
    const cached = await generate(model, prompt, { maxNewTokens: max_new_tokens, eosTokenId: null });
    expect(tf.memory().numTensors).toBe(before);
    const uncached = await generate(model, prompt, {
      maxNewTokens: max_new_tokens,
      eosTokenId: null,
      useCache: false,
    });
    expect(cached).toEqual(greedy.slice(prompt.length));
    expect(uncached).toEqual(cached);
    model.dispose();
  });
});
