// The LoRA-FA layer: @peft/lora's LoraLayer (same tensors, init, forward, merge, file keys) with A
// frozen and a forward pass whose gradient keeps no copy of the layer's input x.
import type { Linear } from '@peft/core';
import { nextSeed } from '@peft/core';
import { LoraLayer } from '@peft/lora';
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
 * rebuilt from its seed in the backward pass (bit-identical to `Dropout`'s).
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

/**
 * A linear layer with LoRA-FA adapters (Zhang et al. 2023, arXiv 2308.03303). The same tensors,
 * initialisation, forward pass, merge and file keys as `LoraLayer` (`lora_A`, `lora_B`), with:
 *
 * - `lora_A` frozen at its random initialisation (never trainable); only `lora_B` (and its bias) train;
 * - a training forward that never keeps x for the backward pass: the matmuls by the frozen A and by
 *   the frozen base weight run under `frozenMatMul`'s custom gradient, which keeps nothing (tfjs's
 *   MatMul keeps both inputs). B's matmul keeps z = dropout(x)·Aᵀ (`[tokens, r]`) for B's gradient
 *   `s · gᵀ·z`; x's gradient `s · (g·B)·A` needs only A. Every other op is LoRA's, so a LoRA step keeps
 *   exactly the same tensors plus each adapted layer's x.
 *
 * Outputs are bit-identical to `LoraLayer`'s for the same weights (and dropout seed).
 */
export class LoraFaLayer extends LoraLayer {
  // Its own technique, so that LoRA and LoRA-FA adapters never mix in one layer.
  override readonly methodName = 'lora-fa';

  /** B (and its bias) follow `trainable`; A stays frozen whatever is asked. */
  override setAdapterTrainable(name: string, trainable: boolean): void {
    super.setAdapterTrainable(name, trainable);
    const a = this.loraA.get(name);
    if (a) a.weight.requiresGrad = false;
  }

  override forward(x: tf.Tensor): tf.Tensor {
    const base = this.baseLayer;
    const baseFrozen = !base.weight.requiresGrad && !base.bias?.requiresGrad;
    if (this.disabled || this.mergedAdapters.length > 0 || !baseFrozen) return super.forward(x);
    return tf.tidy(() => {
      // Linear.forward with the matmul by the frozen weight swapped for one that keeps no x.
      let y: tf.Tensor = frozenMatMul(x, base.weight.value, !base.fanInFanOut);
      if (base.bias) y = tf.add(y, base.bias.value);
      if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), base.outFeatures]);
      for (const name of this.activeAdapters) y = tf.add(y, this.adapterOutput(name, x));
      return y;
    });
  }

  protected override adapterOutput(name: string, x: tf.Tensor): tf.Tensor {
    const a = this.loraA.get(name)!.weight;
    // Someone made A trainable after all: LoRA's own forward, which keeps x for A's gradient.
    if (a.requiresGrad) return super.adapterOutput(name, x);
    const b = this.loraB.get(name)!;
    const drop = this.loraDropout.get(name)!;
    // As Dropout.forward: a seed is drawn only when a mask is, so LoRA and LoRA-FA draw the same masks.
    const dropout = drop.training && drop.p > 0 ? { p: drop.p, seed: nextSeed() } : null;
    return tf.tidy(() => {
      // LoRA's `s · B(A(dropout(x)))` with A's matmul (and the dropout) keeping nothing: B's matmul
      // keeps z = dropout(x)·Aᵀ for B's gradient, and that is all the branch keeps.
      const z = frozenMatMul(x, a.value, true, dropout);
      const r = a.shape[0]!;
      return tf.mul(
        b.forward(x.rank === 2 ? z : tf.reshape(z, [...x.shape.slice(0, -1), r])),
        this.scaling(name),
      );
    });
  }
}
