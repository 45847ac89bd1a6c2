// The LoRA-FA layer: @peft/lora's LoraLayer (same tensors, init, forward, merge, file keys) with A
// frozen and a forward pass whose gradient keeps no copy of the layer's input x.
import { frozenMatMul, nextSeed } from '@peft/core';
import { LoraLayer } from '@peft/lora';
import * as tf from '@tensorflow/tfjs-core';

// The matmul by a frozen weight that keeps nothing for the backward pass lives in core (frozen
// `Linear` layers use it); re-exported here, where it started.
export { frozenMatMul, type SeededDropout } from '@peft/core';

/**
 * A linear layer with LoRA-FA adapters (Zhang et al. 2023, arXiv 2308.03303). The same tensors,
 * initialisation, forward pass, merge and file keys as `LoraLayer` (`lora_A`, `lora_B`), with:
 *
 * - `lora_A` frozen at its random initialisation (never trainable); only `lora_B` (and its bias) train;
 * - a training forward that never keeps x for the backward pass: the matmuls by the frozen A and by
 *   the frozen base weight run under core's `frozenMatMul` custom gradient, which keeps nothing
 *   (tfjs's MatMul keeps both inputs; core's `Linear` uses it whenever its weights are frozen, so
 *   LoRA's base matmul keeps nothing either). B's matmul keeps z = dropout(x)·Aᵀ (`[tokens, r]`) for
 *   B's gradient `s · gᵀ·z`; x's gradient `s · (g·B)·A` needs only A. Every other op is LoRA's, so a
 *   LoRA step keeps exactly the same tensors plus each adapted layer's x (for A's gradient).
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

  protected override adapterOutput(name: string, x: tf.Tensor): tf.Tensor {
    const a = this.loraA.get(name)!.weight;
    // Someone made A trainable after all: LoRA's own forward, which keeps x for A's gradient.
    if (a.requiresGrad) return super.adapterOutput(name, x);
    const drop = this.loraDropout.get(name)!;
    // As Dropout.forward: a seed is drawn only when a mask is, so LoRA and LoRA-FA draw the same masks.
    const dropout = drop.training && drop.p > 0 ? { p: drop.p, seed: nextSeed() } : null;
    return tf.tidy(() => {
      // LoRA's `s · B(A(dropout(x)))` with A's matmul (and the dropout) keeping nothing: B's matmul
      // keeps z = dropout(x)·Aᵀ for B's gradient, and that is all the branch keeps.
      const z = frozenMatMul(x, a.value, true, dropout);
      const r = a.shape[0]!;
      return this.scaledUp(name, x.rank === 2 ? z : tf.reshape(z, [...x.shape.slice(0, -1), r]));
    });
  }
}
