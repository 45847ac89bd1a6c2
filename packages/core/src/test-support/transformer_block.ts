// Small transformer blocks written with plain tfjs-core ops, as a training graph would use them:
// GPT-2 style (LayerNorm, fused qkv, causal softmax attention, GELU MLP) and LLaMA style (RMSNorm,
// RoPE, SwiGLU). Used to check forward passes and gradients across backends.
import * as tf from '@tensorflow/tfjs-core';
import { randomValues } from './seeded_random.js';

export interface BlockConfig {
  batch: number;
  seqLen: number;
  dModel: number;
  nHeads: number;
  /** Hidden size of the MLP. */
  dHidden: number;
}

/** Weight values made in JS (identical on every backend); turn them into tensors with `toTensors`. */
export type WeightValues = Record<string, { shape: number[]; values: Float32Array }>;

export function toTensors(values: WeightValues): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(values).map(([name, w]) => [name, tf.tensor(w.values, w.shape)]));
}

export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

export function rmsNorm(x: tf.Tensor, gamma: tf.Tensor, eps = 1e-6): tf.Tensor {
  const meanSquare = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), gamma);
}

/** GPT-2's GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** [T, T] boolean, true where query t may attend to key s (s <= t). */
export function causalMask(seqLen: number): tf.Tensor2D {
  const values = new Uint8Array(seqLen * seqLen);
  for (let t = 0; t < seqLen; t++) for (let s = 0; s <= t; s++) values[t * seqLen + s] = 1;
  return tf.tensor2d(values, [seqLen, seqLen], 'bool');
}

/** softmax(q k^T / sqrt(d) masked causally) v, for q, k, v of shape [B, H, T, d]. */
export function causalAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  const seqLen = q.shape[2]!;
  const headDim = q.shape[3]!;
  const scores = tf.div(tf.matMul(q as tf.Tensor4D, k as tf.Tensor4D, false, true), Math.sqrt(headDim));
  const masked = tf.where(causalMask(seqLen), scores, tf.scalar(-1e9));
  return tf.matMul(tf.softmax(masked, -1) as tf.Tensor4D, v as tf.Tensor4D);
}

/** [B*T, H*d] -> [B, H, T, d]. */
export function splitHeads(x: tf.Tensor, batch: number, seqLen: number, nHeads: number): tf.Tensor {
  const headDim = x.shape[1]! / nHeads;
  return tf.transpose(tf.reshape(x, [batch, seqLen, nHeads, headDim]), [0, 2, 1, 3]);
}

/** [B, H, T, d] -> [B*T, H*d]. */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [batch, nHeads, seqLen, headDim] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch * seqLen, nHeads * headDim]);
}

/** Rotary tables as in Hugging Face LLaMA: cos/sin of [T, d], the d/2 frequencies repeated twice. */
export function ropeTables(
  seqLen: number,
  headDim: number,
  base = 10000,
): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const cos = new Float32Array(seqLen * headDim);
  const sin = new Float32Array(seqLen * headDim);
  const half = headDim / 2;
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t / base ** ((2 * i) / headDim);
      for (const j of [i, i + half]) {
        cos[t * headDim + j] = Math.cos(angle);
        sin[t * headDim + j] = Math.sin(angle);
      }
    }
  }
  return { cos: tf.tensor2d(cos, [seqLen, headDim]), sin: tf.tensor2d(sin, [seqLen, headDim]) };
}

/** x cos + rotate_half(x) sin, rotate_half(x) = concat(-x2, x1) on the last axis; x is [B, H, T, d]. */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, -1) as [tf.Tensor, tf.Tensor];
  const rotated = tf.concat([tf.neg(x2), x1], -1);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const y = tf.matMul(x as tf.Tensor2D, weight as tf.Tensor2D);
  return bias ? tf.add(y, bias) : y;
}

function weight(shape: number[], seed: number, scale: number) {
  return {
    shape,
    values: randomValues(
      shape.reduce((a, b) => a * b, 1),
      seed,
      scale,
    ),
  };
}

/** GPT-2 block weights, uniform in +-1/sqrt(fan_in); norms near 1 and biases small but non-zero. */
export function gpt2BlockWeights(config: BlockConfig, seed = 1): WeightValues {
  const { dModel: d, dHidden: h } = config;
  const around1 = (shape: number[], s: number) => {
    const w = weight(shape, s, 0.1);
    return { shape, values: w.values.map((v) => 1 + v) };
  };
  return {
    ln1_g: around1([d], seed),
    ln1_b: weight([d], seed + 1, 0.1),
    w_qkv: weight([d, 3 * d], seed + 2, 1 / Math.sqrt(d)),
    b_qkv: weight([3 * d], seed + 3, 0.1),
    w_proj: weight([d, d], seed + 4, 1 / Math.sqrt(d)),
    b_proj: weight([d], seed + 5, 0.1),
    ln2_g: around1([d], seed + 6),
    ln2_b: weight([d], seed + 7, 0.1),
    w_fc: weight([d, h], seed + 8, 1 / Math.sqrt(d)),
    b_fc: weight([h], seed + 9, 0.1),
    w_out: weight([h, d], seed + 10, 1 / Math.sqrt(h)),
    b_out: weight([d], seed + 11, 0.1),
  };
}

/** x: [B, T, D] -> [B, T, D]: x + attn(LN(x)), then + MLP(LN(.)) with GELU (tanh form). */
export function gpt2Block(x: tf.Tensor, w: Record<string, tf.Tensor>, config: BlockConfig): tf.Tensor {
  const { batch, seqLen, dModel, nHeads } = config;
  const x2d = tf.reshape(x, [batch * seqLen, dModel]);
  const qkv = linear(layerNorm(x2d, w.ln1_g!, w.ln1_b!), w.w_qkv!, w.b_qkv!);
  const [q, k, v] = tf.split(qkv, 3, -1).map((t) => splitHeads(t, batch, seqLen, nHeads)) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
  const attended = linear(mergeHeads(causalAttention(q, k, v)), w.w_proj!, w.b_proj!);
  const h = tf.add(x2d, attended);
  const mlp = linear(
    geluTanh(linear(layerNorm(h, w.ln2_g!, w.ln2_b!), w.w_fc!, w.b_fc!)),
    w.w_out!,
    w.b_out!,
  );
  return tf.reshape(tf.add(h, mlp), [batch, seqLen, dModel]);
}

/** LLaMA block weights (no biases). */
export function llamaBlockWeights(config: BlockConfig, seed = 101): WeightValues {
  const { dModel: d, dHidden: h } = config;
  const norm = (s: number) => ({ shape: [d], values: weight([d], s, 0.1).values.map((v) => 1 + v) });
  return {
    rms1_g: norm(seed),
    w_q: weight([d, d], seed + 1, 1 / Math.sqrt(d)),
    w_k: weight([d, d], seed + 2, 1 / Math.sqrt(d)),
    w_v: weight([d, d], seed + 3, 1 / Math.sqrt(d)),
    w_o: weight([d, d], seed + 4, 1 / Math.sqrt(d)),
    rms2_g: norm(seed + 5),
    w_gate: weight([d, h], seed + 6, 1 / Math.sqrt(d)),
    w_up: weight([d, h], seed + 7, 1 / Math.sqrt(d)),
    w_down: weight([h, d], seed + 8, 1 / Math.sqrt(h)),
  };
}

/** x: [B, T, D] -> [B, T, D]: x + attn(RMSNorm(x)) with RoPE on q and k, then + SwiGLU(RMSNorm(.)). */
export function llamaBlock(x: tf.Tensor, w: Record<string, tf.Tensor>, config: BlockConfig): tf.Tensor {
  const { batch, seqLen, dModel, nHeads } = config;
  const { cos, sin } = ropeTables(seqLen, dModel / nHeads);
  const x2d = tf.reshape(x, [batch * seqLen, dModel]);
  const normed = rmsNorm(x2d, w.rms1_g!);
  const heads = (weightName: string) => splitHeads(linear(normed, w[weightName]!), batch, seqLen, nHeads);
  const q = applyRope(heads('w_q'), cos, sin);
  const k = applyRope(heads('w_k'), cos, sin);
  const h = tf.add(x2d, linear(mergeHeads(causalAttention(q, k, heads('w_v'))), w.w_o!));
  const normed2 = rmsNorm(h, w.rms2_g!);
  const swiglu = tf.mul(silu(linear(normed2, w.w_gate!)), linear(normed2, w.w_up!));
  return tf.reshape(tf.add(h, linear(swiglu, w.w_down!)), [batch, seqLen, dModel]);
}
