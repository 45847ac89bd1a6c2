import * as tf from '@tensorflow/tfjs-core';
import { kaimingUniform, uniform } from './init.js';
import { Module } from './module.js';
import { Parameter } from './parameter.js';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  /** Default true. */
  bias?: boolean;
  /**
   * Store the weight as `[in, out]` and compute `x·W` (transformers' `Conv1D`, used by GPT-2)
   * instead of `[out, in]` and `x·Wᵀ` (`nn.Linear`).
   */
  fanInFanOut?: boolean;
  /** Initial weight (ownership taken); default kaiming-uniform a=sqrt(5) like `nn.Linear`. */
  weight?: tf.Tensor;
  /**
   * Use another module's parameter as the weight (tied weights, e.g. GPT-2's `lm_head` and `wte`).
   * It is listed once by `namedParameters`, under the name met first.
   */
  tiedWeight?: Parameter;
  /** Initial bias (ownership taken); default U(±1/sqrt(in)) like `nn.Linear`. */
  biasValue?: tf.Tensor;
}

/** A linear layer `y = x·Wᵀ + b` (or `x·W + b` with `fanInFanOut`), on the last axis of any rank. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly fanInFanOut: boolean;
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(options: LinearOptions) {
    super();
    const { inFeatures, outFeatures } = options;
    if (!(inFeatures > 0 && outFeatures > 0)) {
      throw new Error(`Linear: features must be positive (in=${inFeatures}, out=${outFeatures})`);
    }
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.fanInFanOut = options.fanInFanOut ?? false;
    const shape = this.fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    if (options.tiedWeight) {
      if (!tf.util.arraysEqual(options.tiedWeight.shape, shape)) {
        throw new Error(`Linear: tied weight shape [${options.tiedWeight.shape}] must be [${shape}]`);
      }
      this.weight = this.registerParameter('weight', options.tiedWeight);
    } else {
      const weight = options.weight ?? kaimingUniform(shape, inFeatures);
      if (!tf.util.arraysEqual(weight.shape, shape)) {
        weight.dispose();
        throw new Error(`Linear: weight shape [${weight.shape}] must be [${shape}]`);
      }
      this.weight = this.registerParameter('weight', new Parameter(weight));
    }
    if (options.bias ?? true) {
      const bias = options.biasValue ?? uniform([outFeatures], 1 / Math.sqrt(inFeatures));
      if (!tf.util.arraysEqual(bias.shape, [outFeatures])) {
        throw new Error(`Linear: bias shape [${bias.shape}] must be [${outFeatures}]`);
      }
      this.bias = this.registerParameter('bias', new Parameter(bias));
    } else {
      this.bias = null;
    }
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, this.inFeatures]);
      let y = tf.matMul(x2, this.weight.value, false, !this.fanInFanOut);
      if (this.bias) y = tf.add(y, this.bias.value);
      return x.rank === 2 ? y : tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}
