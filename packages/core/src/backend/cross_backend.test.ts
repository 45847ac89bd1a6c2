// Forward passes and gradients of small transformer blocks on wasm and webgpu agree with the cpu
// backend to 1e-4, relative error being max|a - b| / max|b| per tensor.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BlockConfig,
  evaluateWithGradients,
  gpt2Block,
  gpt2BlockWeights,
  layerNorm,
  llamaBlock,
  llamaBlockWeights,
  type OutputAndGradients,
  randomValues,
  relativeError,
  type WeightValues,
} from '../test-support/index.js';
import { type BackendName, initBackend } from './init_backend.js';
import { requestWebGPUAdapter } from './webgpu_adapter.js';

const TOLERANCE = 1e-4;

interface Case {
  name: string;
  f: (inputs: Record<string, tf.Tensor>) => tf.Tensor;
  inputs: WeightValues;
}

function blockCase(name: string, block: typeof gpt2Block, weights: WeightValues, config: BlockConfig): Case {
  const { batch, seqLen, dModel } = config;
  const x = { shape: [batch, seqLen, dModel], values: randomValues(batch * seqLen * dModel, 5) };
  return { name, f: ({ x: input, ...w }) => block(input!, w, config), inputs: { x, ...weights } };
}

/** Token ids -> embedding (gather) -> GPT-2 block -> LN -> tied logits -> mean cross-entropy. */
function languageModelCase(config: BlockConfig, vocab: number): Case {
  const { batch, seqLen, dModel } = config;
  const tokens = Array.from({ length: batch * seqLen }, (_, i) => (i * 7 + 3) % vocab);
  const labels = tokens.map((t) => (t + 1) % vocab);
  const block = gpt2BlockWeights(config, 31);
  const inputs: WeightValues = {
    wte: { shape: [vocab, dModel], values: randomValues(vocab * dModel, 32) },
    lnf_g: { shape: [dModel], values: new Float32Array(dModel).fill(1) },
    lnf_b: { shape: [dModel], values: new Float32Array(dModel) },
    ...block,
  };
  return {
    name: 'GPT-2 block with embedding and cross-entropy',
    inputs,
    f: ({ wte, lnf_g, lnf_b, ...w }) => {
      const ids = tf.tensor1d(tokens, 'int32');
      const x = tf.reshape(tf.gather(wte!, ids), [batch, seqLen, dModel]);
      const h = layerNorm(tf.reshape(gpt2Block(x, w, config), [batch * seqLen, dModel]), lnf_g!, lnf_b!);
      const logits = tf.matMul(h as tf.Tensor2D, wte as tf.Tensor2D, false, true);
      const target = tf.oneHot(tf.tensor1d(labels, 'int32'), vocab);
      return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logits, -1)), -1)));
    },
  };
}

const small: BlockConfig = { batch: 2, seqLen: 5, dModel: 16, nHeads: 2, dHidden: 32 };
// lavapipe runs WebGPU at a few GFLOP/s and compiles a pipeline per op: keep it tiny.
const tiny: BlockConfig = { batch: 1, seqLen: 4, dModel: 8, nHeads: 2, dHidden: 16 };

function cases(config: BlockConfig): Case[] {
  return [
    blockCase('GPT-2 block', gpt2Block, gpt2BlockWeights(config), config),
    blockCase('LLaMA block (RMSNorm, RoPE, SwiGLU)', llamaBlock, llamaBlockWeights(config), config),
    languageModelCase(config, 11),
  ];
}

async function runOn(backend: BackendName, testCases: Case[]): Promise<OutputAndGradients[]> {
  await initBackend({ backend });
  const results: OutputAndGradients[] = [];
  for (const c of testCases) results.push(await evaluateWithGradients(c.f, c.inputs));
  return results;
}

function expectClose(actual: OutputAndGradients, expected: OutputAndGradients, label: string) {
  const errors: Record<string, number> = { output: relativeError(actual.output, expected.output) };
  for (const name of Object.keys(expected.gradients)) {
    errors[`d/d${name}`] = relativeError(actual.gradients[name]!, expected.gradients[name]!);
  }
  // A zero reference would make the comparison vacuous.
  for (const [name, values] of Object.entries({ output: expected.output, ...expected.gradients })) {
    expect(Math.max(...values.map(Math.abs)), `${label}: ${name} is not all zeros`).toBeGreaterThan(1e-6);
  }
  const worst = Object.entries(errors).sort((a, b) => b[1] - a[1])[0]!;
  expect(worst[1], `${label}: worst relative error ${worst[1].toExponential(2)} (${worst[0]})`).toBeLessThan(
    TOLERANCE,
  );
}

afterAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('wasm agrees with cpu', () => {
  const testCases = cases(small);
  let reference: OutputAndGradients[];
  beforeAll(async () => {
    reference = await runOn('cpu', testCases);
  });

  it('forward and gradients wrt every input', async () => {
    const results = await runOn('wasm', testCases);
    expect(tf.getBackend()).toBe('wasm');
    testCases.forEach((c, i) => {
      expectClose(results[i]!, reference[i]!, `wasm ${c.name}`);
    });
  });
});

const webgpu = await requestWebGPUAdapter();
const webgpuSkipReason = webgpu.adapter === null ? webgpu.reason : undefined;
if (webgpuSkipReason) console.warn(`SKIPPED webgpu vs cpu: ${webgpuSkipReason}`);

describe('webgpu agrees with cpu', () => {
  const testCases = cases(tiny);
  let reference: OutputAndGradients[];
  beforeAll(async () => {
    if (!webgpuSkipReason) reference = await runOn('cpu', testCases);
  });

  it.skipIf(webgpuSkipReason !== undefined)(
    'forward and gradients wrt every input (Dawn in Node)',
    async () => {
      const results = await runOn('webgpu', testCases);
      expect(tf.getBackend()).toBe('webgpu');
      testCases.forEach((c, i) => {
        expectClose(results[i]!, reference[i]!, `webgpu ${c.name}`);
      });
    },
  );
});
