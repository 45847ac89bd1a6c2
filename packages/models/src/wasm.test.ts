// The same parity checks on the WASM backend (Node's default, with core's training kernels), plus a
// training step's gradients through the model.
import { initBackend } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate } from './generate.js';
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
