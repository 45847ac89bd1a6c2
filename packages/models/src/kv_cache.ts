import type { KVPrefix } from '@peft/core';
import type * as tf from '@tensorflow/tfjs-core';

/**
 * Keys and values of the tokens seen so far, one `{ key, value }` per layer, each
 * `[batch, kvHeads, length, headDim]` (keys after RoPE). A prefix-tuning prefix is not stored here:
 * the model prepends it at every step. The caller owns the tensors: `dispose()` when done.
 */
export class KVCache {
  readonly layers: readonly KVPrefix[];

  constructor(layers: readonly KVPrefix[]) {
    if (layers.length === 0) throw new Error('KVCache: needs at least one layer');
    this.layers = layers;
  }

  /** Number of cached positions. */
  get length(): number {
    return this.layers[0]!.key.shape[2]!;
  }

  get batchSize(): number {
    return this.layers[0]!.key.shape[0]!;
  }

  get isDisposed(): boolean {
    return this.layers[0]!.key.isDisposed;
  }

  /** Every tensor of the cache (for `tf.keep` or bookkeeping). */
  tensors(): tf.Tensor[] {
    return this.layers.flatMap(({ key, value }) => [key, value]);
  }

  dispose(): void {
    for (const tensor of this.tensors()) tensor.dispose();
  }
}
