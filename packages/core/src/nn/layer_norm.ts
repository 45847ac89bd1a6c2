import * as tf from '@tensorflow/tfjs-core';
import { layerNorm } from '../kernels/ops/layer_norm.js';
import { Module } from './module.js';
import { Parameter } from './parameter.js';

export interface LayerNormOptions {
  dim: number;
  /** Default 1e-5 (`nn.LayerNorm`; GPT-2's `layer_norm_epsilon`). */
  eps?: number;
}

/** Layer normalisation over the last axis with a learned scale and shift. */
export class LayerNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(options: LayerNormOptions) {
    super();
    this.dim = options.dim;
    this.eps = options.eps ?? 1e-5;
    this.weight = this.registerParameter('weight', new Parameter(tf.ones([options.dim])));
    this.bias = this.registerParameter('bias', new Parameter(tf.zeros([options.dim])));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight.value, this.bias.value, this.eps);
  }
}
