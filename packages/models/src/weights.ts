import { Embedding, LayerNorm, Linear, normal, type Parameter, RMSNorm } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

/** Where a model being built gets its initial tensors (a checkpoint); missing ones are initialised. */
export interface WeightSource {
  /**
   * The tensor stored under the dotted `name`, which must have `shape`; ownership passes to the
   * caller. Undefined when the source has none (the builder then initialises it).
   */
  take(name: string, shape: readonly number[]): tf.Tensor | undefined;
}

/** Options of a model class's constructor (`new GPT2LMHeadModel(config, { weights })`). */
export interface ModelOptions {
  /** Initial tensors by Hugging Face name (a checkpoint); missing ones are initialised. */
  weights?: WeightSource;
}

export interface LinearSpec {
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** Conv1D layout `[in, out]` (GPT-2). */
  fanInFanOut?: boolean;
  /** Std of the initial weight (default: the builder's `std`). */
  std?: number;
  /** Share this parameter as the weight (tied output head). */
  tiedWeight?: Parameter;
}

/**
 * Builds the layers of a model, taking each tensor from the weight source by its Hugging Face name
 * or, when the source has none, initialising it as transformers' `_init_weights` does (normal with
 * `initializer_range` for matrices, zeros for biases, ones for norm scales).
 */
export class ModuleBuilder {
  constructor(
    readonly source: WeightSource | undefined,
    readonly std: number,
  ) {}

  tensor(name: string, shape: number[], init: () => tf.Tensor): tf.Tensor {
    return this.source?.take(name, shape) ?? init();
  }

  linear(name: string, spec: LinearSpec): Linear {
    const { inFeatures, outFeatures, bias } = spec;
    const fanInFanOut = spec.fanInFanOut ?? false;
    if (spec.tiedWeight)
      return new Linear({ inFeatures, outFeatures, bias, fanInFanOut, tiedWeight: spec.tiedWeight });
    const shape = fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    const weight = this.tensor(`${name}.weight`, shape, () => normal(shape, spec.std ?? this.std));
    const biasValue = bias
      ? this.tensor(`${name}.bias`, [outFeatures], () => tf.zeros([outFeatures]))
      : undefined;
    return new Linear({
      inFeatures,
      outFeatures,
      bias,
      fanInFanOut,
      weight,
      ...(biasValue ? { biasValue } : {}),
    });
  }

  embedding(name: string, numEmbeddings: number, embeddingDim: number): Embedding {
    const shape = [numEmbeddings, embeddingDim];
    const weight = this.tensor(`${name}.weight`, shape, () => normal(shape, this.std));
    return new Embedding({ numEmbeddings, embeddingDim, weight });
  }

  layerNorm(name: string, dim: number, eps: number): LayerNorm {
    const norm = new LayerNorm({ dim, eps });
    this.#assign(norm.weight, `${name}.weight`);
    this.#assign(norm.bias, `${name}.bias`);
    return norm;
  }

  rmsNorm(name: string, dim: number, eps: number): RMSNorm {
    const norm = new RMSNorm({ dim, eps });
    this.#assign(norm.weight, `${name}.weight`);
    return norm;
  }

  #assign(parameter: Parameter, name: string): void {
    const value = this.source?.take(name, parameter.shape);
    if (!value) return;
    parameter.assign(value);
    value.dispose();
  }
}
