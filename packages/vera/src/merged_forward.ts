// The VeRA layer's forward and backward with the adapter folded into the base weight, for one
// active adapter without dropout: the same function as `base(x) + λ_b ⊙ B_s(λ_d ⊙ A_s x)`, with
// less work. Per layer and token batch (rows × in → out, rank r):
//   as written: x·A_sᵀ and ·B_sᵀ forward (rows·r·(in + out) multiply-adds), and the same two again
//     backward for λ's gradient path and x's;
//   here: ΔW = (λ_b ⊙ B_s)(λ_d ⊙ A_s) (out·r·in, once per step, no rows), y = x·(W + ΔW)ᵀ in the base
//     matmul (no extra), t = x·A_sᵀ kept (rows·r·in), and backward one product H = dyᵀ·t
//     (out·r·rows) that gives both λ gradients; x's gradient is dy·(W + ΔW), in the base's, and
//     only when wanted (core's customOp): not under the first adapted layer, whose x comes from
//     frozen embeddings (0.91 GFLOP less a step at the bench shape, as PyTorch's autograd skips it).
// At the bench shape (rows 1024, in 384, out 1152, r 256) that is 1.03 instead of 1.61 GFLOP per
// layer, and it keeps t ([rows, r]) and W + ΔW instead of x, λ_d·t and B_s's output ([rows, out]).
import { customOp } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

export interface MergedVeraOperands {
  /** The base weight, `[in, out]` (`fanInFanOut`) or `[out, in]`. */
  weight: tf.Tensor;
  bias: tf.Tensor | null;
  fanInFanOut: boolean;
  /** `A_s`, `[r, in]` and `B_s`, `[out, r]` (frozen). */
  a: tf.Tensor;
  b: tf.Tensor;
}

/**
 * `base(x) + λ_b ⊙ (B_s · (λ_d ⊙ (A_s · x)))` with gradients for x, λ_d and λ_b (the base weight,
 * A_s and B_s are frozen: they get none).
 */
export function mergedVeraLinear(
  x: tf.Tensor,
  lambdaD: tf.Tensor,
  lambdaB: tf.Tensor,
  { weight, bias, fanInFanOut, a, b }: MergedVeraOperands,
): tf.Tensor {
  const [r, inFeatures] = a.shape as [number, number];
  const outFeatures = b.shape[0]!;
  // core's customOp, not tf.customGrad: x's gradient (dy·(W + ΔW), the largest product of the
  // backward pass) is computed only when wanted: not under the model's first adapted layer, whose
  // input comes from frozen embeddings.
  return customOp([x, lambdaD, lambdaB], (save) => {
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inFeatures]);
    const aScaled = tf.mul(a, tf.reshape(lambdaD, [r, 1])); // [r, in]
    const bScaled = tf.mul(b, tf.reshape(lambdaB, [outFeatures, 1])); // [out, r]
    // ΔW in the base weight's own layout.
    const delta = fanInFanOut ? tf.matMul(aScaled, bScaled, true, true) : tf.matMul(bScaled, aScaled);
    const effective = tf.add(weight, delta);
    let y = tf.matMul(x2, effective, false, !fanInFanOut);
    if (bias) y = tf.add(y, bias);
    const t = tf.matMul(x2, a, false, true); // [rows, r]
    // B_s may be a slice made in the caller's tidy: keep it through the save, not the closure.
    save([effective, t, b]);
    return {
      value: x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), outFeatures]),
      gradients: (dy, saved) => {
        const [w, ts, bs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const dy2 = () => (dy.rank === 2 ? dy : tf.reshape(dy, [-1, outFeatures]));
        // H = dyᵀ·t, G = H ⊙ B_s: dλ_b = G·λ_d, dλ_d = λ_bᵀ·G (both from one product, so together).
        const [dLambdaD, dLambdaB] = tf.tidy(() => {
          const g = tf.mul(tf.matMul(dy2(), ts, true, false), bs); // [out, r]
          return [
            tf.reshape(tf.matMul(tf.reshape(lambdaB, [1, outFeatures]), g), [r]),
            tf.reshape(tf.matMul(g, tf.reshape(lambdaD, [r, 1])), [outFeatures]),
          ];
        });
        return [
          () => tf.reshape(tf.matMul(dy2(), w, false, fanInFanOut), x.shape),
          () => dLambdaD!,
          () => dLambdaB!,
        ];
      },
    };
  });
}
