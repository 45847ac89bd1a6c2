import * as tf from '@tensorflow/tfjs-core';
import { causalAttention, causalAttentionFusable } from '../kernels/ops/causal_attention.js';
import { softmaxLastAxis } from '../kernels/ops/softmax.js';
import { nextSeed } from './random.js';

/** Extra keys and values placed before a layer's own, each `[batch, kvHeads, length, headDim]`. */
export interface KVPrefix {
  key: tf.Tensor;
  value: tf.Tensor;
}

/**
 * The attention hook: supplies a key/value prefix for every attention layer (prefix tuning). Models
 * consult the provider set on them; the prefix gets no positional encoding, real tokens' positions
 * start at `length`, and the attention mask is extended to cover it.
 */
export interface AttentionPrefixProvider {
  /** Number of prefix positions. */
  readonly length: number;
  /** The prefix of layer `layerIndex` for a batch of `batchSize` (a new tensor; caller tidies). */
  prefix(layerIndex: number, batchSize: number): KVPrefix;
}

/** A model whose attention layers accept a key/value prefix provider. */
export interface PrefixableModel {
  readonly attentionInfo: { numLayers: number; numKeyValueHeads: number; headDim: number; numHeads: number };
  setAttentionPrefix(provider: AttentionPrefixProvider | null): void;
}

export interface AttentionOptions {
  /** Each query attends only to keys at or before its own position (default true). */
  causal?: boolean;
  /**
   * `[batch, keys]`, 1 where a key may be attended and 0 where it is padding. Covers every key,
   * prefix and cache included.
   */
  keyMask?: tf.Tensor;
  /** Default 1/sqrt(headDim). */
  scale?: number;
  /**
   * Drop attention probabilities with this probability (transformers' `attn_pdrop` /
   * `attention_dropout`); pass 0 outside training. Masks come from the seeded generator.
   */
  dropout?: number;
}

const MASKED = -1e9;

/**
 * softmax(q·kᵀ·scale + mask)·v with `q [B, H, Tq, D]`, `k, v [B, Hkv, Tk, D]`, `Tk >= Tq`.
 * Queries are the last `Tq` positions of the `Tk` keys (earlier keys come from a prefix or cache).
 * Grouped-query attention (`H` a multiple of `Hkv`) folds the query groups into the rows of one
 * batched matmul per key head, so keys and values are never repeated in memory.
 */
export function scaledDotProductAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions = {},
): tf.Tensor {
  const [batch, heads, queries, headDim] = q.shape as [number, number, number, number];
  const [kBatch, kvHeads, keys] = k.shape as [number, number, number, number];
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new Error('attention: q, k, v must be rank 4');
  if (kBatch !== batch || heads % kvHeads !== 0 || keys < queries) {
    throw new Error(`attention: incompatible shapes q [${q.shape}], k [${k.shape}], v [${v.shape}]`);
  }
  const groups = heads / kvHeads;
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const causal = options.causal ?? true;
  const dropout = options.dropout ?? 0;
  if (causal && groups === 1 && !options.keyMask && dropout === 0 && causalAttentionFusable(q, k, v)) {
    return causalAttention(q, k, v, scale);
  }
  return tf.tidy(() => {
    const qGrouped = groups === 1 ? q : tf.reshape(q, [batch, kvHeads, groups * queries, headDim]);
    let scores = tf.mul(tf.matMul(qGrouped, k, false, true), scale);
    const bias = attentionBias(batch, groups, queries, keys, causal, options.keyMask);
    if (bias) scores = tf.add(scores, bias);
    let probabilities = softmaxLastAxis(scores);
    if (dropout > 0) probabilities = tf.dropout(probabilities, dropout, undefined, nextSeed());
    const out = tf.matMul(probabilities, v);
    return groups === 1 ? out : tf.reshape(out, [batch, heads, queries, headDim]);
  });
}

/** The additive mask, broadcastable to `[B, Hkv, groups*Tq, Tk]`, or null when nothing is masked. */
function attentionBias(
  batch: number,
  groups: number,
  queries: number,
  keys: number,
  causal: boolean,
  keyMask: tf.Tensor | undefined,
): tf.Tensor | null {
  let bias: tf.Tensor | null = null;
  if (causal && queries > 1) {
    const offset = keys - queries;
    const values = new Float32Array(groups * queries * keys);
    for (let g = 0; g < groups; g++) {
      for (let i = 0; i < queries; i++) {
        const row = (g * queries + i) * keys;
        for (let j = offset + i + 1; j < keys; j++) values[row + j] = MASKED;
      }
    }
    bias = tf.tensor4d(values, [1, 1, groups * queries, keys]);
  }
  if (keyMask) {
    if (!tf.util.arraysEqual(keyMask.shape, [batch, keys])) {
      throw new Error(`attention: keyMask shape [${keyMask.shape}] must be [${batch}, ${keys}]`);
    }
    const padding = tf.reshape(tf.mul(tf.sub(1, tf.cast(keyMask, 'float32')), MASKED), [batch, 1, 1, keys]);
    bias = bias ? tf.add(bias, padding) : padding;
  }
  return bias;
}

/** Keys and values with the prefix placed first along the sequence axis. */
export function prependKVPrefix(key: tf.Tensor, value: tf.Tensor, prefix: KVPrefix): KVPrefix {
  return { key: tf.concat([prefix.key, key], 2), value: tf.concat([prefix.value, value], 2) };
}
