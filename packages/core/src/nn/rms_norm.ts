import * as tf from '@tensorflow/tfjs-core';
import { Module } from './module.js';
import { Parameter } from './parameter.js';

export interface RMSNormOptions {
  dim: number;
  /** Default 1e-6 (LLaMA's `rms_norm_eps`). */
  eps?: number;
}

/** Root-mean-square normalisation over the last axis with a learned scale (LLaMA's `LlamaRMSNorm`). */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: Parameter;

  constructor(options: RMSNormOptions) {
    super();
    this.dim = options.dim;
    this.eps = options.eps ?? 1e-6;
    this.weight = this.registerParameter('weight', new Parameter(tf.ones([options.dim])));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const meanSquare = tf.mean(tf.square(x), -1, true);
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, this.eps))), this.weight.value);
    });
  }
}
