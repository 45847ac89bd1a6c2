// PEFT's `PrefixEncoder` (src/peft/tuners/prefix_tuning/model.py) as the attention hook of core:
// it supplies every attention layer's key/value prefix. PEFT builds the prefix of all layers at once,
// `E = encoder(arange(T))` of shape `[T, num_layers·2·token_dim]`, read row-major as
// `[layer, k/v, head, head_dim]`; here each layer's slice is computed on its own, which is the same
// arithmetic without building (or differentiating) the other layers' slices in every layer.
import {
  type AttentionPrefixProvider,
  Embedding,
  type KVPrefix,
  Linear,
  Module,
  ModuleDict,
} from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

export interface PrefixEncoderOptions {
  /** `num_virtual_tokens`: prefix positions per layer. */
  numVirtualTokens: number;
  numLayers: number;
  /** `token_dim`: `heads · headDim` of the keys (or values) of one layer. */
  tokenDim: number;
  /** `num_attention_heads`: key/value heads of the prefix. */
  numHeads: number;
  /** Reparametrise with Embedding → Linear → Tanh → Linear (training only; ignored in inference mode). */
  prefixProjection?: boolean;
  /** Hidden width of the projection (default `tokenDim`). */
  encoderHiddenSize?: number;
  /** `"zero"`: the last Linear (or the embedding, without projection) starts at zero. */
  initWeights?: 'zero' | null;
  /** A plain embedding of the finished prefixes, frozen (PEFT's `inference_mode`, as after loading). */
  inferenceMode?: boolean;
  /** Inference mode: the table `[numVirtualTokens, numLayers·2·tokenDim]` (ownership taken). */
  weight?: tf.Tensor;
}

/**
 * The prefix encoder of one adapter. Parameter names are PEFT's: `embedding.weight`, and with the
 * projection `transform.0.{weight,bias}` and `transform.2.{weight,bias}` (index 1 is the Tanh).
 */
export class PrefixEncoder extends Module implements AttentionPrefixProvider {
  readonly length: number;
  readonly numLayers: number;
  readonly tokenDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  /** True when the projection MLP is used (`prefix_projection` outside inference mode). */
  readonly prefixProjection: boolean;
  /** Frozen, as PEFT's `inference_mode`: the core keeps its parameters out of training. */
  readonly inferenceMode: boolean;
  readonly embedding: Embedding;
  readonly transform: ModuleDict<Linear> | null;
  /** The last output computed for saving, disposed when the next is made or the encoder is. */
  #saved: tf.Tensor | null = null;

  constructor(options: PrefixEncoderOptions) {
    super();
    const { numVirtualTokens: tokens, numLayers, tokenDim, numHeads } = options;
    for (const [name, value] of Object.entries({ numVirtualTokens: tokens, numLayers, tokenDim, numHeads })) {
      if (!(Number.isInteger(value) && value > 0))
        throw new Error(`PrefixEncoder: ${name} must be a positive integer (got ${value})`);
    }
    if (tokenDim % numHeads !== 0) {
      throw new Error(`PrefixEncoder: tokenDim ${tokenDim} is not a multiple of numHeads ${numHeads}`);
    }
    this.length = tokens;
    this.numLayers = numLayers;
    this.tokenDim = tokenDim;
    this.numHeads = numHeads;
    this.headDim = tokenDim / numHeads;
    this.inferenceMode = options.inferenceMode ?? false;
    this.prefixProjection = (options.prefixProjection ?? false) && !this.inferenceMode;
    const zero = options.initWeights === 'zero';
    const outWidth = numLayers * 2 * tokenDim;
    if (options.weight && !this.inferenceMode) {
      throw new Error('PrefixEncoder: a weight is given only in inference mode');
    }
    if (this.prefixProjection) {
      const hidden = options.encoderHiddenSize ?? tokenDim;
      this.embedding = this.registerModule(
        'embedding',
        new Embedding({ numEmbeddings: tokens, embeddingDim: tokenDim }),
      );
      this.transform = this.registerModule('transform', new ModuleDict<Linear>());
      this.transform.set('0', new Linear({ inFeatures: tokenDim, outFeatures: hidden }));
      this.transform.set(
        '2',
        new Linear({
          inFeatures: hidden,
          outFeatures: outWidth,
          ...(zero ? { weight: tf.zeros([outWidth, hidden]), biasValue: tf.zeros([outWidth]) } : {}),
        }),
      );
    } else {
      const weight = options.weight ?? (zero ? tf.zeros([tokens, outWidth]) : undefined);
      this.embedding = this.registerModule(
        'embedding',
        new Embedding({ numEmbeddings: tokens, embeddingDim: outWidth, ...(weight ? { weight } : {}) }),
      );
      this.transform = null;
    }
  }

  /** The prefix token ids `0 … T-1` (PEFT's `prompt_tokens`). */
  #positions(): tf.Tensor {
    return tf.range(0, this.length, 1, 'int32');
  }

  /** Width of one layer's slice of the output: keys and values, `2·tokenDim`. */
  get layerWidth(): number {
    return 2 * this.tokenDim;
  }

  /**
   * Layer `layerIndex`'s slice of the encoder output, `[T, 2·tokenDim]`: columns
   * `layerIndex·2·tokenDim …` of PEFT's `encoder(arange(T))`.
   */
  layerOutput(layerIndex: number): tf.Tensor {
    if (!(Number.isInteger(layerIndex) && layerIndex >= 0 && layerIndex < this.numLayers)) {
      throw new Error(`PrefixEncoder: layer ${layerIndex} is not in [0, ${this.numLayers})`);
    }
    const width = this.layerWidth;
    const start = layerIndex * width;
    return tf.tidy(() => {
      if (!this.transform) {
        // The embedding lookup of PEFT (`embedding(arange(T))`), on this layer's columns only.
        const columns = tf.slice(this.embedding.weight.value, [0, start], [this.length, width]);
        return tf.gather(columns, this.#positions());
      }
      const hidden = tf.tanh(this.transform.get('0')!.forward(this.embedding.forward(this.#positions())));
      // The rows of the last Linear (`[out, in]`) that produce this layer's columns.
      const last = this.transform.get('2')!;
      const weight = tf.slice(last.weight.value, [start, 0], [width, last.inFeatures]);
      const bias = tf.slice(last.bias!.value, [start], [width]);
      return tf.add(tf.matMul(hidden, weight, false, true), bias);
    });
  }

  /** The whole output, `[T, numLayers·2·tokenDim]` (what PEFT saves as `prompt_embeddings`); a new tensor. */
  output(): tf.Tensor {
    return tf.tidy(() => {
      if (!this.transform) return tf.gather(this.embedding.weight.value, this.#positions());
      const hidden = tf.tanh(this.transform.get('0')!.forward(this.embedding.forward(this.#positions())));
      return this.transform.get('2')!.forward(hidden);
    });
  }

  /**
   * The tensor saved as `prompt_embeddings`: the embedding itself (live) without projection, else the
   * projected output, computed now and kept until the next call or `dispose()`.
   */
  savedEmbeddings(): tf.Tensor {
    if (!this.transform) return this.embedding.weight.value;
    this.#saved?.dispose();
    this.#saved = tf.keep(this.output());
    return this.#saved;
  }

  /** Keys and values `[batch, heads, T, headDim]` of layer `layerIndex` (PEFT's `get_prompt`). */
  prefix(layerIndex: number, batchSize: number): KVPrefix {
    return tf.tidy(() => {
      const flat = this.layerOutput(layerIndex);
      // [T, k/v, head, dim] → [k/v, head, T, dim]
      const kv = tf.transpose(tf.reshape(flat, [this.length, 2, this.numHeads, this.headDim]), [1, 2, 0, 3]);
      const [key, value] = tf.split(kv, 2, 0) as [tf.Tensor, tf.Tensor];
      const batch = (t: tf.Tensor) => (batchSize === 1 ? t : tf.tile(t, [batchSize, 1, 1, 1]));
      return { key: batch(key), value: batch(value) };
    });
  }

  override dispose(): void {
    super.dispose();
    this.#saved?.dispose();
    this.#saved = null;
  }
}
