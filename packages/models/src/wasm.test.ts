// The same parity checks on the WASM backend (Node's default, with core's training kernels), plus a
// training step's gradients through the model.
import { initBackend } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { causalLMLoss } from './causal_lm_loss.js';
import { generate } from './generate.js';
import { KVBuffer } from './kv_buffer.js';
import { loadModel } from './node/index.js';
import { fixtureDir, maxAbsDiffAtMask, readExpected } from './test-support/fixtures.js';

beforeAll(async () => {
  const report = await initBackend({ backend: 'wasm' });
  expect(report.backend).toBe('wasm');
});

describe.each(['gpt2-wide', 'llama-gqa-untied', 'qwen2-tiny'])('%s on wasm', (name) => {
  it('gives the reference logits and greedy tokens', async () => {
    const expected = readExpected(name);
    const model = await loadModel(fixtureDir(name));
    for (const c of expected.cases) {
      const { logits } = model.forward({
        inputIds: c.input_ids,
        attentionMask: c.attention_mask,
        ...(c.position_ids ? { positionIds: c.position_ids } : {}),
      });
      const diff = maxAbsDiffAtMask(logits.arraySync() as number[][][], c.logits, c.attention_mask);
      logits.dispose();
      console.log(`parity (wasm) ${name} ${c.name}: max abs diff ${diff.toExponential(2)}`);
      expect(diff).toBeLessThanOrEqual(1e-4);
    }
    const { input_ids, labels, loss } = expected.loss;
    const ours = tf.tidy(() => causalLMLoss(model, input_ids, labels).dataSync()[0]!);
    expect(Math.abs(ours - loss) / loss).toBeLessThanOrEqual(1e-5);
    const { prompt, max_new_tokens, greedy } = expected.generation;
    expect(await generate(model, prompt, { maxNewTokens: max_new_tokens, eosTokenId: null })).toEqual(
      greedy.slice(prompt.length),
    );
    const { grads, value } = tf.variableGrads(() =>
      tf.tidy(() => tf.mean(tf.square(model.forward({ inputIds: [prompt] }).logits)) as tf.Scalar),
    );
    expect(Object.keys(grads).length).toBe([...model.namedParameters()].length);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
  });
});

describe.each(['gpt2-wide', 'llama-gqa-untied'])('%s: the in-place KV buffer on wasm', (name) => {
  it('gives the logits of the whole sequence, a token at a time, at a flat cost', async () => {
    const model = await loadModel(fixtureDir(name));
    model.eval();
    const ids = [3, 17, 5, 29, 11, 8, 2, 19, 23, 7];
    const { logits: whole } = model.forward({ inputIds: [ids] });
    const expected = whole.arraySync() as number[][][];
    whole.dispose();
    expect(KVBuffer.available()).toBe(true);
    const buffer = new KVBuffer(model.attentionInfo, 1, ids.length);
    const before = tf.memory().numTensors;
    // A prompt of 4 (attention over several queries), then one token at a time.
    const first = model.forward({ inputIds: [ids.slice(0, 4)], kvBuffer: buffer });
    let worst = 0;
    const rows = first.logits.arraySync() as number[][][];
    first.logits.dispose();
    rows[0]!.forEach((row, i) => {
      worst = Math.max(worst, ...row.map((x, j) => Math.abs(x - expected[0]![i]![j]!)));
    });
    for (let t = 4; t < ids.length; t++) {
      const { logits, cache } = model.forward({ inputIds: [[ids[t]!]], kvBuffer: buffer });
      expect(cache).toBeUndefined();
      const row = (logits.arraySync() as number[][][])[0]![0]!;
      logits.dispose();
      worst = Math.max(worst, ...row.map((x, j) => Math.abs(x - expected[0]![t]![j]!)));
    }
    expect(buffer.length).toBe(ids.length);
    expect(worst).toBeLessThan(1e-4);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => model.forward({ inputIds: [[1]], kvBuffer: buffer })).toThrow(/kvBuffer is full/);
    expect(() => model.forward({ inputIds: [[1]], kvBuffer: buffer, useCache: true })).toThrow(
      /does not go with/,
    );
    buffer.dispose();
    model.dispose();
  });
});
