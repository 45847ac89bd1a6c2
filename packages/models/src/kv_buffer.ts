import { cachedAttentionAvailable } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A preallocated key/value cache for generation: one `[batch, kvHeads, capacity, headDim]` buffer
 * per layer for keys and one for values. A forward pass given it (`CausalLMInput.kvBuffer`) writes
 * its tokens' keys and values at `length` in place and attends to the buffer's first positions
 * without copying them, then advances `length`: each token costs the same whatever the position
 * (the `KVCache` way concatenates, copying every cached position at every step). Where core's wasm
 * kernels for it are not available (`KVBuffer.available()` false), use `KVCache`.
 */
export class KVBuffer {
  readonly layers: readonly { key: tf.Tensor; value: tf.Tensor }[];
  readonly batchSize: number;
  readonly capacity: number;
  /** Positions written so far. */
  length = 0;

  constructor(
    info: { numLayers: number; numKeyValueHeads: number; headDim: number },
    batchSize: number,
    capacity: number,
  ) {
    if (!(Number.isInteger(capacity) && capacity > 0))
      throw new Error(`KVBuffer: capacity must be a positive integer (got ${capacity})`);
    const shape = [batchSize, info.numKeyValueHeads, capacity, info.headDim];
    this.layers = Array.from({ length: info.numLayers }, () => ({
      key: tf.zeros(shape),
      value: tf.zeros(shape),
    }));
    this.batchSize = batchSize;
    this.capacity = capacity;
  }

  /** Whether the active backend runs the in-place cache (wasm with core's kernels). */
  static available(): boolean {
    return cachedAttentionAvailable();
  }

  get isDisposed(): boolean {
    return this.layers[0]?.key.isDisposed ?? true;
  }

  dispose(): void {
    for (const { key, value } of this.layers) tf.dispose([key, value]);
  }
}
