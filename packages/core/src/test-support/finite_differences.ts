import * as tf from '@tensorflow/tfjs-core';
import { relativeError } from './relative_error.js';
import { randomValues } from './seeded_random.js';

export interface GradientCheckOptions {
  /** Central-difference step. float32 favours a large one: 1e-2 (truncation ~eps^2, rounding ~1e-7/eps). */
  eps?: number;
  /** Seed of the fixed weights that reduce the output to a scalar. */
  seed?: number;
}

export interface GradientCheck {
  /** tf.grads of the weighted-sum loss, per input. */
  analytic: Float32Array[];
  /** Central finite differences of the same loss, per input. */
  numeric: Float64Array[];
  /** relativeError(analytic, numeric), per input. */
  relativeErrors: number[];
}

/**
 * Checks tfjs's gradients of `f` against central finite differences, for every float input.
 * The output of `f` (any shape) is reduced to a scalar loss with fixed random weights, so every output
 * element matters: a plain sum would hide errors (softmax rows sum to 1 whatever the input).
 * Runs synchronously on the current backend; meant for the cpu backend and small inputs
 * (two evaluations of `f` per input element). Integer inputs (indices) belong in `f`'s closure.
 */
export function checkGradients(
  f: (...inputs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  options: GradientCheckOptions = {},
): GradientCheck {
  const eps = options.eps ?? 1e-2;
  const outputShape = tf.tidy(() => f(...inputs).shape);
  const weights = tf.tensor(randomValues(sizeOf(outputShape), options.seed ?? 7), outputShape);
  const loss = (...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weights)) as tf.Scalar;
  try {
    const analytic = tf
      .tidy(() => tf.grads(loss)(inputs))
      .map((g) => {
        const values = g.dataSync() as Float32Array;
        g.dispose();
        return values;
      });
    const numeric = inputs.map((_, i) => numericGradient(loss, inputs, i, eps));
    const relativeErrors = analytic.map((a, i) => relativeError(a, numeric[i]!));
    return { analytic, numeric, relativeErrors };
  } finally {
    weights.dispose();
  }
}

/** d loss / d inputs[index], element by element, by central differences (float64 arithmetic outside tf). */
export function numericGradient(
  loss: (...xs: tf.Tensor[]) => tf.Scalar,
  inputs: tf.Tensor[],
  index: number,
  eps = 1e-2,
): Float64Array {
  const input = inputs[index]!;
  const base = Float32Array.from(input.dataSync());
  const gradient = new Float64Array(base.length);
  const evaluate = (values: Float32Array): number =>
    tf.tidy(() => {
      const xs = inputs.slice();
      xs[index] = tf.tensor(values, input.shape, input.dtype);
      return loss(...xs).dataSync()[0]!;
    });
  for (let j = 0; j < base.length; j++) {
    const x = base[j]!;
    const plus = Math.fround(x + eps);
    const minus = Math.fround(x - eps);
    const values = base.slice();
    values[j] = plus;
    const fPlus = evaluate(values);
    values[j] = minus;
    const fMinus = evaluate(values);
    // Divide by the step float32 actually took, not by 2 * eps.
    gradient[j] = (fPlus - fMinus) / (plus - minus);
  }
  return gradient;
}

function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
