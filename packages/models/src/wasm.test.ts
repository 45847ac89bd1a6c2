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

describe('gpt2-wide: attention read in place from c_attn on wasm', () => {
  it("gives the general path's logits and gradients, with no split, transposes or concat", async () => {
    const model = await loadModel(fixtureDir('gpt2-wide'));
    model.eval(); // no dropout: attention dropout takes the general path
    const ids = [
      [3, 17, 5, 29, 11, 8, 2, 19],
      [23, 7, 1, 9, 14, 6, 30, 4],
    ];
    const parameters = [...model.namedParameters()];
    // An all-ones attention mask takes the general path (split, heads, attention, merge): the same math.
    const run = (attentionMask?: number[][]) =>
      tf.variableGrads(
        () =>
          tf.tidy(() => {
            const { logits } = model.forward({ inputIds: ids, ...(attentionMask ? { attentionMask } : {}) });
            return tf.mean(tf.square(logits)) as tf.Scalar;
          }),
        parameters.map(([, p]) => p.variable),
      );
    const before = tf.memory().numTensors;
    const packed = run();
    const general = run(ids.map((row) => row.map(() => 1)));
    expect(Math.abs(packed.value.dataSync()[0]! - general.value.dataSync()[0]!)).toBeLessThan(1e-6);
    for (const [, p] of parameters) {
      const a = Array.from(packed.grads[p.variable.name]!.dataSync());
      const b = Array.from(general.grads[p.variable.name]!.dataSync());
      const worst = a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i]!) / (1e-3 + Math.abs(b[i]!))), 0);
      expect(worst).toBeLessThan(1e-3);
    }
    tf.dispose([
      packed.value,
      general.value,
      ...Object.values(packed.grads),
      ...Object.values(general.grads),
    ]);
    expect(tf.memory().numTensors).toBe(before);
    // tf.profile returns the engine's one profile object: read each before the next.
    const kernelsOf = async (attentionMask?: number[][]) => {
      const profile = await tf.profile(() => {
        const { value, grads } = run(attentionMask);
        tf.dispose([value, ...Object.values(grads)]);
      });
      return profile.kernels.map((k) => k.name);
    };
    const count = (names: string[], name: string) => names.filter((n) => n === name).length;
    const inPlace = await kernelsOf();
    const split = await kernelsOf(ids.map((row) => row.map(() => 1)));
    expect(inPlace).toContain('PeftCausalSelfAttention');
    expect(inPlace).toContain('PeftCausalSelfAttentionGrad');
    expect(split).not.toContain('PeftCausalSelfAttention');
    // Per layer (2), the general path splits q, k, v (and concats their gradients) and transposes
    // q, k, v and the output both ways: 8 transposes.
    expect([count(inPlace, 'SplitV'), count(inPlace, 'Concat')]).toEqual([0, 0]);
    expect([count(split, 'SplitV'), count(split, 'Concat')]).toEqual([2, 2]);
    expect(count(split, 'Transpose') - count(inPlace, 'Transpose')).toBe(16);
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
