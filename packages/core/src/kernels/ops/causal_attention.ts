import * as tf from '@tensorflow/tfjs-core';
import {
  PEFT_CAUSAL_ATTENTION,
  PEFT_CAUSAL_ATTENTION_GRAD,
  PEFT_CAUSAL_SELF_ATTENTION,
  PEFT_CAUSAL_SELF_ATTENTION_GRAD,
} from '../wasm/CausalAttention.js';
import { fusedKernelsActive } from '../wasm/Fused.js';

/**
 * Whether `causalAttention` runs fused for these operands: wasm with core's kernels, float32,
 * `q [B, H, Tq, D]` and `k, v [B, H, Tk, D]` with the same heads, Tq and Tk multiples of 4, Tk >= Tq.
 */
export function causalAttentionFusable(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): boolean {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) return false;
  if (q.dtype !== 'float32' || k.dtype !== 'float32' || v.dtype !== 'float32') return false;
  const [b, h, tq, d] = q.shape as [number, number, number, number];
  const [kb, kh, tk, kd] = k.shape as [number, number, number, number];
  if (kb !== b || kh !== h || kd !== d || !tf.util.arraysEqual(v.shape, k.shape)) return false;
  if (tq % 4 !== 0 || tk % 4 !== 0 || tq === 0 || tk < tq || d === 0) return false;
  return fusedKernelsActive(PEFT_CAUSAL_ATTENTION, true);
}

/**
 * softmax(scale·q·kᵀ + causal mask)·v with queries the last Tq of the Tk keys, as one wasm kernel
 * each way (core's SIMD GEMM skipping the masked half, a fused masked softmax); keeps the
 * probabilities for the backward pass, as the composed form does. Only where
 * `causalAttentionFusable` holds.
 */
export function causalAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number): tf.Tensor {
  const run = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [qi, ki, vi, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [out, probs] = tf
      .engine()
      .runKernel(PEFT_CAUSAL_ATTENTION, { q: qi, k: ki, v: vi }, { scale }) as tf.Tensor[];
    save([qi, ki, vi, probs!]);
    return {
      value: out!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, sp] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf
          .engine()
          .runKernel(
            PEFT_CAUSAL_ATTENTION_GRAD,
            { dy, q: sq, k: sk, v: sv, probs: sp },
            { scale },
          ) as tf.Tensor[];
      },
    };
  });
  return run(q, k, v) as tf.Tensor;
}

/**
 * Whether `causalSelfAttention` runs fused for `qkv`: wasm with core's kernels, float32
 * `[B, T, 3·heads·D]`, T a multiple of 4.
 */
export function causalSelfAttentionFusable(qkv: tf.Tensor, heads: number): boolean {
  if (qkv.rank !== 3 || qkv.dtype !== 'float32' || !(Number.isInteger(heads) && heads > 0)) return false;
  const [batch, length, width3] = qkv.shape as [number, number, number];
  if (batch === 0 || length === 0 || length % 4 !== 0 || width3 === 0 || width3 % (3 * heads) !== 0)
    return false;
  return fusedKernelsActive(PEFT_CAUSAL_SELF_ATTENTION, true);
}

/**
 * Causal self-attention of a fused projection's output `qkv [B, T, 3·heads·D]` (q, k and v side
 * by side on the last axis, each `heads · D`: GPT-2's `c_attn`), returned with the heads merged,
 * `[B, T, heads·D]`: the same as splitting q, k, v into heads, `causalAttention` and merging, but the
 * kernels read the projection in place and write the merged layout, and the gradient is one
 * `[B, T, 3·heads·D]` tensor (no split, no transposes, no concat). Only where
 * `causalSelfAttentionFusable` holds.
 */
export function causalSelfAttention(qkv: tf.Tensor, heads: number, scale: number): tf.Tensor {
  const run = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [packed, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const [out, probs] = tf
      .engine()
      .runKernel(PEFT_CAUSAL_SELF_ATTENTION, { qkv: packed }, { heads, scale }) as tf.Tensor[];
    save([packed, probs!]);
    return {
      value: out!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sqkv, sp] = saved as [tf.Tensor, tf.Tensor];
        return tf
          .engine()
          .runKernel(
            PEFT_CAUSAL_SELF_ATTENTION_GRAD,
            { dy, qkv: sqkv, probs: sp },
            { heads, scale },
          ) as tf.Tensor;
      },
    };
  });
  return run(qkv) as tf.Tensor;
}
