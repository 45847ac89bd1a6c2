import { manualSeed } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate, pickToken } from './generate.js';
import { loadModel } from './node/index.js';
import { fixtureDir, readExpected, useCpuBackend } from './test-support/fixtures.js';

beforeAll(useCpuBackend);

describe.each(['gpt2-tiny', 'llama-gqa-untied'])('%s: generate', (name) => {
  it('a left-padded batch gives each prompt its own greedy tokens, with and without cache', async () => {
    const model = await loadModel(fixtureDir(name));
    const prompts = [[4, 8, 15, 16, 23], [42], [7, 7, 9]];
    const alone = [];
    for (const p of prompts) alone.push(await generate(model, p, { maxNewTokens: 6, eosTokenId: null }));
    const before = tf.memory().numTensors;
    expect(await generate(model, prompts, { maxNewTokens: 6, eosTokenId: null })).toEqual(alone);
    expect(await generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, useCache: false })).toEqual(
      alone,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('stops a row at EOS and streams tokens as they come', async () => {
    const model = await loadModel(fixtureDir(name));
    const { prompt, greedy } = readExpected(name).generation;
    const reference = greedy.slice(prompt.length);
    const eos = reference[2]!;
    const streamed: [number, number][] = [];
    const out = await generate(model, [prompt, prompt], {
      maxNewTokens: 8,
      eosTokenId: eos,
      onToken: (token, row) => {
        streamed.push([token, row]);
      },
    });
    const stop = reference.indexOf(eos) + 1;
    expect(out).toEqual([reference.slice(0, stop), reference.slice(0, stop)]);
    expect(streamed.filter(([, row]) => row === 0).map(([t]) => t)).toEqual(reference.slice(0, stop));
    model.dispose();
  });

  it('samples reproducibly from a seed (or from manualSeed), in eval mode, restoring train mode', async () => {
    const model = await loadModel(fixtureDir(name));
    model.train();
    const options = { maxNewTokens: 8, temperature: 1.5, topK: 20, topP: 0.95, eosTokenId: null };
    const a = await generate(model, [1, 2, 3], { ...options, seed: 11 });
    const b = await generate(model, [1, 2, 3], { ...options, seed: 11 });
    expect(a).toEqual(b);
    manualSeed(3);
    const c = await generate(model, [1, 2, 3], options);
    manualSeed(3);
    expect(await generate(model, [1, 2, 3], options)).toEqual(c);
    const seeds = await Promise.all(
      [1, 2, 3, 4, 5].map((seed) => generate(model, [1, 2, 3], { ...options, seed })),
    );
    expect(new Set(seeds.map((s) => s.join())).size).toBeGreaterThan(1);
    const greedy = await generate(model, [1, 2, 3], { maxNewTokens: 8, eosTokenId: null });
    expect(await generate(model, [1, 2, 3], { maxNewTokens: 8, eosTokenId: null, topK: 1, seed: 5 })).toEqual(
      greedy,
    );
    expect(model.training).toBe(true);
    model.dispose();
  });
});

describe('pickToken', () => {
  const logits = Float32Array.from([0, 3, 1, 2.9, -1]);
  const sampling = (overrides: object) => ({
    doSample: true,
    temperature: 1,
    topK: null,
    topP: null,
    random: () => 0.999,
    ...overrides,
  });

  it('greedy takes the first maximum', () => {
    expect(pickToken(Float32Array.from([1, 5, 5]), sampling({ doSample: false }))).toBe(1);
  });

  it('top-k keeps the k most likely (ties with the k-th kept)', () => {
    expect(pickToken(logits, sampling({ topK: 2 }))).toBe(3);
    expect(pickToken(Float32Array.from([2, 1, 1, 0]), sampling({ topK: 2 }))).toBe(2);
  });

  it('top-p keeps the smallest set reaching the mass', () => {
    expect(pickToken(logits, sampling({ topP: 0.3 }))).toBe(1);
    expect(pickToken(logits, sampling({ topP: 0.6 }))).toBe(3);
  });

  it('low temperature concentrates on the maximum', () => {
    expect(pickToken(logits, sampling({ temperature: 0.01, random: () => 0.5 }))).toBe(1);
  });
});

describe('argument errors', () => {
  it('rejects bad options', async () => {
    const model = await loadModel(fixtureDir('gpt2-tiny'));
    await expect(generate(model, [1], { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens/);
    await expect(generate(model, [1], { maxNewTokens: 1, topP: 0 })).rejects.toThrow(
      /topP must be in \(0, 1\]/,
    );
    await expect(generate(model, [[1], []], { maxNewTokens: 1 })).rejects.toThrow(
      /every prompt needs a token/,
    );
    model.dispose();
  });
});
