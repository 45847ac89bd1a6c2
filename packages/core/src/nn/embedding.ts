import * as tf from '@tensorflow/tfjs-core';
import { normal } from './init.js';
import { Module } from './module.js';
import { Parameter } from './parameter.js';

export interface EmbeddingOptions {
  numEmbeddings: number;
  embeddingDim: number;
  /** Initial table `[num, dim]` (ownership taken); default N(0, 1) like `nn.Embedding`. */
  weight?: tf.Tensor;
}

/** A lookup table: int32 ids `[...]` to vectors `[..., dim]`. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly weight: Parameter;

  constructor(options: EmbeddingOptions) {
    super();
    this.numEmbeddings = options.numEmbeddings;
    this.embeddingDim = options.embeddingDim;
    const shape = [options.numEmbeddings, options.embeddingDim];
    const weight = options.weight ?? normal(shape);
    if (!tf.util.arraysEqual(weight.shape, shape)) {
      throw new Error(`Embedding: weight shape [${weight.shape}] must be [${shape}]`);
    }
    this.weight = this.registerParameter('weight', new Parameter(weight));
  }

  forward(ids: tf.Tensor): tf.Tensor {
    if (ids.dtype !== 'int32') throw new Error(`Embedding: ids must be int32 (got ${ids.dtype})`);
    return tf.tidy(() => {
      const flat = tf.reshape(ids, [-1]);
      const rows = tf.gather(this.weight.value, flat);
      return tf.reshape(rows, [...ids.shape, this.embeddingDim]);
    });
  }
}
