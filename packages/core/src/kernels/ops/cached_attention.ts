import * as tf from '@tensorflow/tfjs-core';
import { PEFT_CACHED_ATTENTION, PEFT_KV_WRITE } from '../wasm/CachedAttention.js';
import { fusedKernelsActive } from '../wasm/Fused.js';

/**
 * Whether the preallocated key/value cache ops run here (wasm with core's kernels and GEMM). Where
 * they do not, keep a cache by concatenation (`tf.concat` per step).
 */
export function cachedAttentionAvailable(): boolean {
  return fusedKernelsActive(PEFT_CACHED_ATTENTION, true) && fusedKernelsActive(PEFT_KV_WRITE, true);
}

/**
 * Writes `values [B, H, T, D]` into rows `position .. position + T` of `buffer [B, H, capacity, D]`
 * in place (the buffer is mutated: keep it private to one cache) and returns the buffer (the same
 * data, a new handle for the caller to dispose). Only where `cachedAttentionAvailable()`.
 */
export function writeKV(buffer: tf.Tensor, values: tf.Tensor, position: number): tf.Tensor {
  return tf.engine().runKernel(PEFT_KV_WRITE, { buffer, values }, { position }) as tf.Tensor;
}

/**
 * softmax(scale·q·kᵀ + causal mask)·v with `q [B, H, Tq, D]` over the first `length` positions of
 * `keys, values [B, Hkv, capacity, D]` (the queries are the last Tq of them), read in place.
 * Inference only (no gradient). Only where `cachedAttentionAvailable()`.
 */
export function cachedAttention(
  q: tf.Tensor,
  keys: tf.Tensor,
  values: tf.Tensor,
  length: number,
  scale: number,
): tf.Tensor {
  return tf.engine().runKernel(PEFT_CACHED_ATTENTION, { q, keys, values }, { length, scale }) as tf.Tensor;
}
