import type { Module } from '@peft/core';
import type * as tf from '@tensorflow/tfjs-core';

/** Anything callable on a tensor: a `Linear`, a norm, or an adapter wrapping one. */
export interface Layer {
  forward(x: tf.Tensor): tf.Tensor;
}

/**
 * The child `name` of `parent`, looked up at call time. Adapters replace children in place
 * (`setSubmodule`), so a model must never keep its own reference to the layer it was built with.
 */
export function childLayer(parent: Module, name: string): Layer {
  const child = parent.getSubmodule(name) as unknown as Partial<Layer>;
  if (typeof child.forward !== 'function') {
    throw new Error(`submodule "${name}" (${child.constructor.name}) has no forward(x)`);
  }
  return child as Layer;
}
