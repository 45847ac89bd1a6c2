import {
  type AttentionPrefixProvider,
  cachedAttention,
  causalSelfAttention,
  causalSelfAttentionFusable,
  type KVPrefix,
  Module,
  type PrefixableModel,
  prependKVPrefix,
  scaledDotProductAttention,
  writeKV,
} from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfigJson } from './config.js';
import type { KVBuffer } from './kv_buffer.js';
import { KVCache } from './kv_cache.js';

/** Token ids or a 0/1 mask: an int32 tensor or nested arrays, `[batch, length]`. */
export type TokenIdsLike = tf.Tensor | readonly (readonly number[])[];

export interface CausalLMInput {
  /** `[batch, length]` token ids. */
  inputIds: TokenIdsLike;
  /**
   * `[batch, cached + length]`, 1 for real tokens and 0 for padding, covering the cached positions
   * too (as in transformers). Default: every position is attended.
   */
  attentionMask?: TokenIdsLike;
  /**
   * `[batch, length]` positions of the new tokens. Default: `cached + 0 … cached + length - 1`.
   * With an attention prefix set, both are shifted by the prefix length.
   */
  positionIds?: TokenIdsLike;
  /** Keys and values of earlier tokens (from a previous call with `useCache`); not disposed here. */
  cache?: KVCache;
  /** Return the updated cache (default: true when `cache` is given). */
  useCache?: boolean;
  /** Compute logits for the last `n` positions only (0, the default, means all). */
  logitsToKeep?: number;
  /**
   * A preallocated key/value cache (generation): this pass's keys and values are written into it
   * at its `length`, attention reads it in place, and its `length` advances. Not with `cache` /
   * `useCache`, an attention mask or an attention prefix.
   */
  kvBuffer?: KVBuffer;
}

export interface CausalLMOutput {
  /** `[batch, length, vocab]` (or the last `logitsToKeep` positions). */
  logits: tf.Tensor;
  /** Keys and values of the cached and new tokens, when requested; the caller disposes it. */
  cache?: KVCache;
}

export interface AttentionInfo {
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  numHeads: number;
}

/** A decoder-only language model with Hugging Face module names, accepting a prefix-tuning provider. */
export interface CausalLM<C extends ModelConfigJson = ModelConfigJson> extends Module, PrefixableModel {
  /** config.json's `model_type` (`gpt2`, `llama`, `mistral`, `qwen2`). */
  readonly modelType: string;
  /** The full config, transformers' defaults filled in, ready to be saved as config.json. */
  readonly config: C;
  readonly attentionInfo: AttentionInfo;
  readonly attentionPrefix: AttentionPrefixProvider | null;
  forward(input: CausalLMInput): CausalLMOutput;
}

/** An int32 `[batch, length]` tensor; array entries are checked to be integers in `[0, limit)`. */
function toInt32(value: TokenIdsLike, what: string, limit = Number.POSITIVE_INFINITY): tf.Tensor {
  if (value instanceof tf.Tensor) {
    if (value.rank !== 2) throw new Error(`${what} must be 2-D [batch, length] (got shape [${value.shape}])`);
    return value.dtype === 'int32' ? value : tf.cast(value, 'int32');
  }
  const rows = value.length;
  const columns = rows > 0 ? value[0]!.length : 0;
  if (rows === 0 || columns === 0) throw new Error(`${what} must be a non-empty [batch, length] array`);
  const flat = new Int32Array(rows * columns);
  value.forEach((row, r) => {
    if (row.length !== columns)
      throw new Error(`${what}: row ${r} has ${row.length} entries, row 0 has ${columns}`);
    for (let c = 0; c < columns; c++) {
      const v = row[c]!;
      if (!(Number.isInteger(v) && v >= 0 && v < limit)) {
        const range = Number.isFinite(limit) ? ` in [0, ${limit})` : '';
        throw new Error(`${what}: entry [${r}, ${c}] is not an integer${range} (${v})`);
      }
      flat[r * columns + c] = v;
    }
  });
  return tf.tensor2d(flat, [rows, columns], 'int32');
}

/**
 * Everything the attention layers of one forward pass share: positions, the key mask, the prefix
 * provider and the cache. `attend` runs one layer's attention and records its keys/values for the
 * new cache.
 */
export class AttentionContext {
  readonly batch: number;
  readonly length: number;
  readonly pastLength: number;
  readonly prefixLength: number;
  /** `[1 | batch, length]` int32 absolute positions (after the prefix and the cache). */
  readonly positionIds: tf.Tensor;
  /** The largest position, when positions are the defaults (explicit ones are not read back). */
  readonly maxDefaultPosition: number | null;
  /** `[batch, prefix + cached + length]` float 0/1, or undefined when every key is attended. */
  readonly keyMask: tf.Tensor | undefined;
  readonly logitsToKeep: number;
  readonly newCache: KVPrefix[] | null;
  readonly #provider: AttentionPrefixProvider | null;
  readonly #cache: KVCache | undefined;
  readonly #buffer: KVBuffer | undefined;

  constructor(
    ids: tf.Tensor,
    input: CausalLMInput,
    provider: AttentionPrefixProvider | null,
    info: AttentionInfo,
  ) {
    const [batch, length] = ids.shape as [number, number];
    this.batch = batch;
    this.length = length;
    this.#provider = provider;
    this.#cache = input.cache;
    this.prefixLength = provider?.length ?? 0;
    this.logitsToKeep = input.logitsToKeep ?? 0;
    const cache = input.cache;
    if (cache) {
      if (cache.isDisposed) throw new Error('forward: the cache has been disposed');
      if (cache.layers.length !== info.numLayers || cache.batchSize !== batch) {
        throw new Error(
          `forward: cache holds ${cache.layers.length} layers of batch ${cache.batchSize}, the model needs ${info.numLayers} layers of batch ${batch}`,
        );
      }
    }
    const buffer = input.kvBuffer;
    if (buffer) {
      if (buffer.isDisposed) throw new Error('forward: the kvBuffer has been disposed');
      if (cache || input.useCache || input.attentionMask !== undefined || provider) {
        throw new Error(
          'forward: kvBuffer does not go with cache, useCache, attentionMask or an attention prefix',
        );
      }
      if (buffer.layers.length !== info.numLayers || buffer.batchSize !== batch) {
        throw new Error(
          `forward: kvBuffer holds ${buffer.layers.length} layers of batch ${buffer.batchSize}, the model needs ${info.numLayers} layers of batch ${batch}`,
        );
      }
      if (buffer.length + length > buffer.capacity) {
        throw new Error(
          `forward: kvBuffer is full (${buffer.length} + ${length} positions, capacity ${buffer.capacity})`,
        );
      }
    }
    this.#buffer = buffer;
    this.pastLength = cache?.length ?? buffer?.length ?? 0;
    this.newCache = (input.useCache ?? cache !== undefined) ? [] : null;
    const offset = this.prefixLength + this.pastLength;

    if (input.positionIds !== undefined) {
      const positions = toInt32(input.positionIds, 'positionIds');
      if (!tf.util.arraysEqual(positions.shape, [batch, length])) {
        throw new Error(`forward: positionIds shape [${positions.shape}] must be [${batch}, ${length}]`);
      }
      this.positionIds =
        this.prefixLength > 0 ? tf.add(positions, tf.scalar(this.prefixLength, 'int32')) : positions;
      this.maxDefaultPosition = null;
    } else {
      this.positionIds = tf.reshape(tf.range(offset, offset + length, 1, 'int32'), [1, length]);
      this.maxDefaultPosition = offset + length - 1;
    }

    if (input.attentionMask !== undefined) {
      const mask = toInt32(input.attentionMask, 'attentionMask');
      const keys = this.pastLength + length;
      if (!tf.util.arraysEqual(mask.shape, [batch, keys])) {
        throw new Error(
          `forward: attentionMask shape [${mask.shape}] must be [${batch}, ${keys}] (cached ${this.pastLength} + new ${length} positions)`,
        );
      }
      const floatMask = tf.cast(mask, 'float32');
      this.keyMask =
        this.prefixLength > 0 ? tf.concat([tf.ones([batch, this.prefixLength]), floatMask], 1) : floatMask;
    } else {
      this.keyMask = undefined;
    }
  }

  /** Total number of keys each query sees (prefix, cache and new tokens). */
  get keyLength(): number {
    return this.prefixLength + this.pastLength + this.length;
  }

  /**
   * Self-attention straight from a fused projection `qkv [B, T, 3·H·D]` (q, k, v side by side, as
   * GPT-2's `c_attn` gives them), returned as `[B, T, H·D]`; null when this pass needs `attend`: a
   * prefix, a cache (given, kept or a buffer), a key mask, dropout, or no fused kernel for the shape
   * (core's `causalSelfAttention`: wasm with its kernels).
   */
  attendPacked(qkv: tf.Tensor, heads: number, options: { scale: number; dropout: number }): tf.Tensor | null {
    const general =
      this.#buffer !== undefined ||
      this.#cache !== undefined ||
      this.newCache !== null ||
      this.#provider !== null ||
      this.keyMask !== undefined ||
      options.dropout > 0;
    if (general || !causalSelfAttentionFusable(qkv, heads)) return null;
    return causalSelfAttention(qkv, heads, options.scale);
  }

  /**
   * Attention of layer `layerIndex`: `q [B, H, T, D]` over the cached keys followed by `k, v
   * [B, Hkv, T, D]`, with the prefix (if any) in front. Returns `[B, H, T, D]`.
   */
  attend(
    layerIndex: number,
    q: tf.Tensor,
    k: tf.Tensor,
    v: tf.Tensor,
    options: { scale?: number; dropout?: number } = {},
  ): tf.Tensor {
    const buffer = this.#buffer;
    if (buffer) {
      // In place: write this pass's keys and values, attend to the buffer's first positions.
      const layer = buffer.layers[layerIndex]!;
      tf.dispose([writeKV(layer.key, k, this.pastLength), writeKV(layer.value, v, this.pastLength)]);
      const scale = options.scale ?? 1 / Math.sqrt(q.shape[3]!);
      return cachedAttention(q, layer.key, layer.value, this.pastLength + this.length, scale);
    }
    let keys: KVPrefix = { key: k, value: v };
    const past = this.#cache?.layers[layerIndex];
    if (past) keys = { key: tf.concat([past.key, k], 2), value: tf.concat([past.value, v], 2) };
    // Layers run in their own tidy scopes; keep the cached tensors past them (the caller owns them).
    if (this.newCache) this.newCache[layerIndex] = { key: tf.keep(keys.key), value: tf.keep(keys.value) };
    if (this.#provider) {
      const prefix = this.#provider.prefix(layerIndex, this.batch);
      const expected = [this.batch, k.shape[1]!, this.prefixLength, k.shape[3]!];
      if (
        !tf.util.arraysEqual(prefix.key.shape, expected) ||
        !tf.util.arraysEqual(prefix.value.shape, expected)
      ) {
        throw new Error(
          `attention prefix of layer ${layerIndex}: key [${prefix.key.shape}] and value [${prefix.value.shape}] must be [${expected}]`,
        );
      }
      keys = prependKVPrefix(keys.key, keys.value, prefix);
    }
    return scaledDotProductAttention(q, keys.key, keys.value, {
      causal: true,
      ...(this.keyMask ? { keyMask: this.keyMask } : {}),
      ...(options.scale !== undefined ? { scale: options.scale } : {}),
      dropout: options.dropout ?? 0,
    });
  }
}

/** `[B, T, C]` → the last `n` positions (all when n is 0). */
export function keepLast(hidden: tf.Tensor, n: number): tf.Tensor {
  const length = hidden.shape[1]!;
  if (n <= 0 || n >= length) return hidden;
  return tf.slice(hidden, [0, length - n, 0], [-1, n, -1]);
}

/** `[B, T, H·D]` → `[B, H, T, D]` (reshape, then a 4-D transpose). */
export function splitHeads(x: tf.Tensor, heads: number, headDim: number): tf.Tensor {
  const [batch, length] = x.shape as [number, number];
  return tf.transpose(tf.reshape(x, [batch, length, heads, headDim]), [0, 2, 1, 3]);
}

/** `[B, H, T, D]` → `[B, T, H·D]`. */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [batch, heads, length, headDim] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, length, heads * headDim]);
}

/**
 * Shared machinery of the causal LMs: input validation, the prefix hook, positions, masks and the
 * KV cache. Subclasses compute `[B, T, vocab]` logits from ids and the context.
 */
export abstract class CausalLMBase<C extends ModelConfigJson> extends Module implements CausalLM<C> {
  abstract readonly modelType: string;
  abstract readonly config: C;
  abstract readonly attentionInfo: AttentionInfo;
  #prefix: AttentionPrefixProvider | null = null;

  get attentionPrefix(): AttentionPrefixProvider | null {
    return this.#prefix;
  }

  setAttentionPrefix(provider: AttentionPrefixProvider | null): void {
    if (provider && !(Number.isInteger(provider.length) && provider.length > 0)) {
      throw new Error(`setAttentionPrefix: length must be a positive integer (got ${provider.length})`);
    }
    this.#prefix = provider;
  }

  protected abstract computeLogits(ids: tf.Tensor, context: AttentionContext): tf.Tensor;

  forward(input: CausalLMInput): CausalLMOutput {
    let written = 0;
    const [logits, ...cached] = tf.tidy(() => {
      const ids = toInt32(input.inputIds, 'inputIds', this.config.vocab_size as number);
      const context = new AttentionContext(ids, input, this.#prefix, this.attentionInfo);
      written = context.length;
      const logits = this.computeLogits(ids, context);
      return [logits, ...(context.newCache ?? []).flatMap(({ key, value }) => [key, value])];
    });
    if (input.kvBuffer) input.kvBuffer.length += written;
    if (cached.length === 0) return { logits: logits! };
    const layers: KVPrefix[] = [];
    for (let i = 0; i < cached.length; i += 2) layers.push({ key: cached[i]!, value: cached[i + 1]! });
    return { logits: logits!, cache: new KVCache(layers) };
  }
}
