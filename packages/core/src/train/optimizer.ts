import type * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '../nn/parameter.js';

/**
 * An optimizer's state as plain data: named tensors (moments, projections, ...) plus named numbers
 * (step counts). Names are the optimizer's own, built from parameter names so that a checkpoint can
 * be matched against a model. This is the serialisation format: the tensors go to a safetensors
 * file, the numbers to JSON, in Node and in the browser alike.
 */
export interface OptimizerState {
  tensors: Map<string, tf.Tensor>;
  scalars: Record<string, number>;
}

/**
 * What the Trainer needs from an optimizer. Techniques bring their own implementation (LoRA-FA's
 * projected-gradient AdamW, for instance) behind this interface.
 */
export interface Optimizer {
  /** Number of `step` calls so far. */
  readonly stepCount: number;
  /**
   * Multiplier on every group's learning rate, set by a schedule before each step (PyTorch's
   * `LambdaLR` semantics: effective lr = base lr × scale).
   */
  lrScale: number;
  /** Effective learning rate of the first parameter group, for logging. */
  readonly lr: number;
  /** The parameters this optimizer updates. */
  parameters(): Parameter[];
  /**
   * One update from the given gradients, in place (`variable.assign`). Parameters without a gradient
   * are left alone. Does not take ownership of the gradients.
   */
  step(grads: ReadonlyMap<Parameter, tf.Tensor>): void;
  /** Bytes held by the optimizer state (moments etc.), for memory accounting. */
  stateBytes(): number;
  /** The state; tensors are live (not copies): read or save them, do not dispose them. */
  getState(): OptimizerState;
  /**
   * Restore a state from `getState`. Everything is checked first (names, shapes, numbers) so that a
   * mismatched state throws and changes nothing. Does not take ownership of the tensors.
   */
  setState(state: OptimizerState): void;
  /** Free the state tensors. */
  dispose(): void;
}
