import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { geluNew } from './ops/gelu_new.js';
import { layerNorm as fusedLayerNorm } from './ops/layer_norm.js';
import { softmaxLastAxis } from './ops/softmax.js';
import { registerTrainingKernels, replacedKernel, unregisterTrainingKernels } from './register_kernels.js';
import { unsortedSegmentSumConfig } from './wasm/UnsortedSegmentSum.js';

const kernelNames = [
  'BatchMatMul',
  'GatherV2',
  'Identity',
  'PadV2',
  'Slice',
  'SplitV',
  'Sum',
  'Tile',
  'Transpose',
  'Unpack',
  'UnsortedSegmentSum',
  // core's fused ops (no tfjs kernel of these names exists)
  'PeftGeluNew',
  'PeftGeluNewGrad',
  'PeftLayerNorm',
  'PeftLayerNormGrad',
  'PeftSoftmax',
  'PeftSoftmaxGrad',
  'PeftCausalAttention',
  'PeftCausalAttentionGrad',
  'PeftCausalSelfAttention',
  'PeftCausalSelfAttentionGrad',
  'PeftCrossEntropy',
  'PeftCrossEntropyGrad',
  'PeftKVWrite',
  'PeftCachedAttention',
].sort();

beforeAll(async () => {
  // tfjs-core's Node bundle registers no gradients; vite resolves this module for the test.
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  await tf.setBackend('wasm');
});

describe('registerTrainingKernels', () => {
  it('registers once, replaces only wasm kernels, and can be undone', () => {
    const wasmBefore = new Map(kernelNames.map((n) => [n, tf.getKernel(n, 'wasm')]));
    const cpuBefore = tf.getKernelsForBackend('cpu').length;
    expect(registerTrainingKernels().sort()).toEqual(kernelNames);
    expect(registerTrainingKernels()).toEqual([]);
    expect(tf.getKernelsForBackend('cpu').length).toBe(cpuBefore);
    for (const name of kernelNames) {
      expect(tf.getKernel(name, 'wasm')).not.toBe(wasmBefore.get(name));
      expect(replacedKernel(name)).toBe(wasmBefore.get(name));
    }
    unregisterTrainingKernels();
    for (const name of kernelNames) expect(tf.getKernel(name, 'wasm')).toBe(wasmBefore.get(name));
    expect(registerTrainingKernels().sort()).toEqual(kernelNames);
  });
});

/**
 * A GPT-2 block on token embeddings with a tied LM head: the ops (and so the kernels, forward and
 * backward) of a training step. Returns the loss.
 */
function gpt2Loss(
  p: Record<string, tf.Variable>,
  ids: tf.Tensor2D,
  batch: number,
  seq: number,
  heads: number,
) {
  const dim = p.wpe!.shape[1]!;
  const headDim = dim / heads;
  // core's fused LayerNorm, softmax and geluNew: their wasm kernels with the training kernels
  // registered, tfjs ops composed without (the reference).
  const layerNorm = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => fusedLayerNorm(x, g, b, 1e-5);
  const linear = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.add(tf.matMul(x, w), b);
  const positions = tf.range(0, seq, 1, 'int32');
  const x = tf.add(tf.gather(p.wte!, ids), tf.gather(p.wpe!, positions)); // [B, T, D]
  const flat = tf.reshape(x, [batch * seq, dim]);
  const qkv = linear(layerNorm(flat, p.ln1g!, p.ln1b!), p.wAttn!, p.bAttn!);
  // [B, T, 3, H, hd] -> [3, B, H, T, hd]: the 5-D transpose and split a naive model does.
  const [q, k, v] = tf.split(
    tf.transpose(tf.reshape(qkv, [batch, seq, 3, heads, headDim]), [2, 0, 3, 1, 4]),
    3,
    0,
  );
  const squeeze = (t: tf.Tensor) => tf.reshape(t, [batch, heads, seq, headDim]);
  const scores = tf.mul(tf.matMul(squeeze(q!), squeeze(k!), false, true), 1 / Math.sqrt(headDim));
  const allowed = Array.from({ length: seq * seq }, (_, n) => n % seq <= Math.floor(n / seq));
  const causal = tf.tensor4d(allowed, [1, 1, seq, seq], 'bool');
  const attn = softmaxLastAxis(tf.where(causal, scores, tf.fill(scores.shape, -1e9)));
  const context = tf.reshape(tf.transpose(tf.matMul(attn, squeeze(v!)), [0, 2, 1, 3]), [batch * seq, dim]);
  const h1 = tf.add(flat, linear(context, p.wProj!, p.bProj!));
  const mlp = linear(geluNew(linear(layerNorm(h1, p.ln2g!, p.ln2b!), p.wFc!, p.bFc!)), p.wOut!, p.bOut!);
  const h2 = tf.add(h1, mlp);
  const logits = tf.matMul(h2, p.wte!, false, true);
  const targets = tf.oneHot(tf.reshape(ids, [batch * seq]), p.wte!.shape[0]!);
  return tf.losses.softmaxCrossEntropy(targets, logits);
}

describe('a transformer training step', () => {
  it('computes the same loss and gradients with the replaced kernels as with the wasm ones', () => {
    const [vocab, dim, heads, batch, seq] = [40, 32, 4, 2, 16];
    let seed = 20;
    const init = (shape: number[], scale = 0.2) =>
      tf.variable(tf.randomNormal(shape, 0, scale, 'float32', seed++));
    const params: Record<string, tf.Variable> = {
      wte: init([vocab, dim]),
      wpe: init([seq, dim]),
      ln1g: tf.variable(tf.ones([dim])),
      ln1b: init([dim], 0.02),
      wAttn: init([dim, 3 * dim]),
      bAttn: init([3 * dim], 0.02),
      wProj: init([dim, dim]),
      bProj: init([dim], 0.02),
      ln2g: tf.variable(tf.ones([dim])),
      ln2b: init([dim], 0.02),
      wFc: init([dim, 4 * dim]),
      bFc: init([4 * dim], 0.02),
      wOut: init([4 * dim, dim]),
      bOut: init([dim], 0.02),
    };
    const ids = tf.randomUniform([batch, seq], 0, vocab, 'int32', 99) as tf.Tensor2D;
    const step = () =>
      tf.variableGrads(() => gpt2Loss(params, ids, batch, seq, heads) as tf.Scalar, Object.values(params));

    registerTrainingKernels();
    const fast = step();
    unregisterTrainingKernels();
    // The wasm backend has no UnsortedSegmentSum at all (gather's gradient): keep ours for the reference.
    tf.registerKernel(unsortedSegmentSumConfig);
    const reference = step();
    tf.unregisterKernel('UnsortedSegmentSum', 'wasm');
    registerTrainingKernels();

    expect(Math.abs(fast.value.dataSync()[0]! - reference.value.dataSync()[0]!)).toBeLessThan(1e-5);
    for (const name of Object.keys(params)) {
      const got = fast.grads[params[name]!.name]!.dataSync();
      const want = reference.grads[params[name]!.name]!.dataSync();
      let worst = 0;
      let scale = 0;
      want.forEach((w, i) => {
        worst = Math.max(worst, Math.abs(got[i]! - w));
        scale = Math.max(scale, Math.abs(w));
      });
      expect(worst, name).toBeLessThan(1e-5 * (1 + scale));
    }
  });
});
