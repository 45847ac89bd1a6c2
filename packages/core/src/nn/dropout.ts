import * as tf from '@tensorflow/tfjs-core';
import { Module } from './module.js';
import { nextSeed } from './random.js';

/** Inverted dropout, active only in training mode; masks come from the seeded generator. */
export class Dropout extends Module {
  readonly p: number;

  constructor(p: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1) (got ${p})`);
    this.p = p;
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.p === 0) return x;
    return tf.dropout(x, this.p, undefined, nextSeed());
  }
}
