import * as tf from '@tensorflow/tfjs-core';
import { addKeepingNothing } from './add_keeping_nothing.js';
import { frozenMatMul } from './frozen_matmul.js';
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

  /** Weight and bias (if any) both frozen. */
  get frozen(): boolean {
    return !this.weight.requiresGrad && !(this.bias?.requiresGrad ?? false);
  }

  /**
   * `x·Wᵀ + b`. A frozen layer (weight and bias not trainable) runs the matmul as `frozenMatMul`,
   * which keeps nothing for the backward pass (tfjs's MatMul would keep x for W's gradient).
   */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      // frozenMatMul reshapes x inside its custom gradient: a recorded Reshape would keep x.
      let y: tf.Tensor = this.frozen
        ? frozenMatMul(x, this.weight.value, !this.fanInFanOut)
        : tf.matMul(
            x.rank === 2 ? x : tf.reshape(x, [-1, this.inFeatures]),
            this.weight.value,
            false,
            !this.fanInFanOut,
          );
      if (this.bias) y = addKeepingNothing(y, this.bias.value);
      return x.rank === 2 ? y : tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}
