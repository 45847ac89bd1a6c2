import * as tf from '@tensorflow/tfjs-core';

/** `[..., n]` as `[rows, n]` (a view: reshape copies nothing). */
function rows(x: tf.Tensor, n: number): tf.Tensor2D {
  return (x.rank === 2 ? x : tf.reshape(x, [-1, n])) as tf.Tensor2D;
}

/**
 * tf.dropout's multiplier (`floor(u + keep) / keep`, u ~ U[0, 1) seeded), rebuilt from its seed: the
 * same ops as tf.dropout, so the mask is bit-identical to the one `Dropout` would draw. The backward
 * pass rebuilds it instead of keeping it (it is as large as x).
 */
function dropoutMultiplier(shape: number[], p: number, seed: number): tf.Tensor {
  const keep = 1 - p;
  return tf.div(tf.floor(tf.add(tf.randomUniform(shape, 0, 1, 'float32', seed), keep)), keep);
}

/** Inverted dropout on the input of `frozenMatMul`: probability and the seed of its mask. */
export interface SeededDropout {
  p: number;
  seed: number;
}

/**
 * `dropout(x)·Wᵀ` (`transposeB`) or `dropout(x)·W` for a frozen `w`, as `[rows, out]` (`x` of any
 * rank is read as `[rows, in]`), with a gradient for x only: `dx = mask ⊙ dy·W` (or `dy·Wᵀ`). It
 * keeps nothing for the backward pass: tfjs's own MatMul (and the Reshape and dropout before it)
 * would keep x (and the mask) alive for W's gradient, which a frozen W never needs. A dropout mask is
 * rebuilt from its seed in the backward pass (bit-identical to `Dropout`'s). `w` gets no gradient:
 * use it only for weights that do not train.
 */
export function frozenMatMul(
  x: tf.Tensor,
  w: tf.Tensor,
  transposeB: boolean,
  dropout: SeededDropout | null = null,
): tf.Tensor2D {
  const inFeatures = w.shape[transposeB ? 1 : 0]!;
  const mask = () =>
    dropout ? dropoutMultiplier([x.size / inFeatures, inFeatures], dropout.p, dropout.seed) : null;
  const forward = tf.customGrad((input) => {
    const xIn = input as tf.Tensor;
    const m = mask();
    const x2 = rows(xIn, inFeatures);
    return {
      value: tf.matMul(m ? tf.mul(x2, m) : x2, w, false, transposeB),
      // tidy: tfjs runs a custom gradient outside the per-op scope that frees a built-in one's temporaries.
      gradFunc: (dy: tf.Tensor) =>
        tf.tidy(() => {
          const dx = tf.matMul(dy as tf.Tensor2D, w, false, !transposeB);
          const m = mask();
          return tf.reshape(m ? tf.mul(dx, m) : dx, xIn.shape);
        }),
    };
  });
  return forward(x) as tf.Tensor2D;
}
