import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';

/** What a gradient source is given for one micro-batch. */
export interface GradientContext<B> {
  /** The module being trained (its parameters are the reference values). */
  module: Module;
  /** The trainable parameters, by dotted name, in the order the gradients must follow. */
  parameters: readonly (readonly [string, Parameter])[];
  /** The Trainer's loss of a (micro-)batch, for computing on this thread. */
  loss: (batch: B) => tf.Scalar;
}

/** A micro-batch's mean loss and gradients; the Trainer takes ownership of the tensors. */
export interface GradientResult {
  loss: tf.Scalar;
  /** Aligned with `GradientContext.parameters`; undefined where the loss does not depend on one. */
  grads: (tf.Tensor | undefined)[];
}

/**
 * Where the Trainer gets a micro-batch's loss and gradients. The default, `localGradients`,
 * computes them on this thread with `tf.variableGrads`; `DataParallelGradients` spreads a batch over
 * workers (Web Workers, or Node's worker threads). Accumulation, clipping, the non-finite guard, the optimizer
 * and the schedule stay in the Trainer whatever the source.
 */
export interface GradientSource<B> {
  compute(batch: B, context: GradientContext<B>): GradientResult | Promise<GradientResult>;
}

/** `tf.variableGrads` of the loss on this thread (the Trainer's default source). */
export const localGradients: GradientSource<unknown> = {
  compute(batch, { parameters, loss }) {
    const variables = parameters.map(([, p]) => p.variable);
    const { value, grads } = tf.variableGrads(() => loss(batch), variables);
    return { loss: value, grads: variables.map((v) => grads[v.name]) };
  },
};
