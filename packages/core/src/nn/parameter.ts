import * as tf from '@tensorflow/tfjs-core';

/**
 * A trainable or frozen tensor owned by a module: a tfjs Variable plus the `requiresGrad` flag
 * (the Variable's `trainable` flag, which `tf.variableGrads` honours, so frozen weights never get
 * a gradient computed).
 */
export class Parameter {
  readonly variable: tf.Variable;

  /** Takes ownership of `value`: the caller must not dispose it. */
  constructor(value: tf.Tensor, options: { requiresGrad?: boolean } = {}) {
    this.variable = tf.variable(value, options.requiresGrad ?? true);
    value.dispose();
  }

  get value(): tf.Variable {
    return this.variable;
  }

  get requiresGrad(): boolean {
    return this.variable.trainable;
  }

  set requiresGrad(flag: boolean) {
    this.variable.trainable = flag;
  }

  get shape(): number[] {
    return this.variable.shape;
  }

  get size(): number {
    return this.variable.size;
  }

  get dtype(): tf.DataType {
    return this.variable.dtype;
  }

  get isDisposed(): boolean {
    return this.variable.isDisposed;
  }

  /** Replace the value in place; the shape must not change. Does not take ownership of `value`. */
  assign(value: tf.Tensor): void {
    if (!tf.util.arraysEqual(value.shape, this.variable.shape)) {
      throw new Error(`Parameter.assign: shape [${value.shape}] does not match [${this.variable.shape}]`);
    }
    if (value.dtype === this.variable.dtype) this.variable.assign(value);
    else tf.tidy(() => this.variable.assign(tf.cast(value, this.variable.dtype)));
  }

  dispose(): void {
    if (!this.variable.isDisposed) this.variable.dispose();
  }
}
