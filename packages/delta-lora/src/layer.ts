// The Delta-LoRA layer: @peft/lora's LoraLayer (dropout 0) whose frozen base weight W also moves, by
// λ·s·(B_{t+1}A_{t+1} − B_t A_t) after each optimizer step past the start step (DeltaLoraOptimizer
// drives this). The layer keeps what is needed to save, export and undo that movement.
import { Parameter, ParameterDict } from '@peft/core';
import { LoraLayer, type LoraLayerConfig } from '@peft/lora';
import * as tf from '@tensorflow/tfjs-core';

/** What one Delta-LoRA adapter on one layer needs. */
export interface DeltaLoraLayerConfig extends LoraLayerConfig {
  /**
   * The base weight has started moving (a saved adapter past its start step): the start snapshot (the
   * initial A and B) and the accumulated change (zero) are created for the caller to load.
   */
  started?: boolean;
}

/** The registered technique name, also the layer's `methodName`. */
export const DELTA_LORA_METHOD_NAME = 'delta-lora';

/**
 * The accumulated change D of a base weight W. Assigning D moves W by the same amount, so that
 * `W = W_original + D` holds however D is set: by a training step, by loading a saved adapter
 * (core's generic `loadAdapterStateDict`), or by restoring a checkpoint.
 */
class WeightDelta extends Parameter {
  readonly #weight: Parameter;

  constructor(weight: Parameter) {
    super(tf.zerosLike(weight.value), { requiresGrad: false });
    this.#weight = weight;
  }

  override assign(value: tf.Tensor): void {
    if (!tf.util.arraysEqual(value.shape, this.shape)) {
      throw new Error(`Delta-LoRA: weight delta of shape [${value.shape}] does not match [${this.shape}]`);
    }
    tf.tidy(() => {
      const next = tf.cast(value, this.dtype);
      this.#weight.assign(tf.add(this.#weight.value, tf.sub(next, this.value)));
      this.variable.assign(next);
    });
  }

  /** `W += update; D += update`. */
  accumulate(update: tf.Tensor): void {
    tf.tidy(() => {
      this.#weight.assign(tf.add(this.#weight.value, update));
      this.variable.assign(tf.add(this.value, update));
    });
  }

  /** `W −= D`: the base weight as it was before any movement (up to float32 rounding). */
  undo(): void {
    tf.tidy(() => this.#weight.assign(tf.sub(this.#weight.value, this.value)));
  }
}

/** The live tensors of a started adapter: `A_{K+1}`, `B_{K+1}` and the accumulated change D of W. */
export interface DeltaState {
  /** `A_{K+1}`, `[r, in]`. */
  aStart: tf.Variable;
  /** `B_{K+1}`, `[out, r]`. */
  bStart: tf.Variable;
  /** D, in the base weight's own layout (`[in, out]` for Conv1D, `[out, in]` for Linear). */
  weightDelta: tf.Variable;
}

/** Values of A and B, taken before an optimizer step. */
export interface LoraFactors {
  a: tf.Tensor;
  b: tf.Tensor;
}

/**
 * A linear layer with one Delta-LoRA adapter: the forward pass is LoRA's, `y = W·x + s·B·A·x` (no
 * dropout), with a base weight W that moves during training. Besides LoRA's `lora_A`/`lora_B` it holds,
 * once the base weight has started moving (step K+1), three buffers saved with the adapter:
 * `lora_A_start` and `lora_B_start` (`A_{K+1}`, `B_{K+1}`, for the standard LoRA export) and
 * `lora_weight_delta` (D, the accumulated change of W). While the adapter is inactive or disabled the
 * layer computes the original layer, `(W − D)·x`, without changing W.
 */
export class DeltaLoraLayer extends LoraLayer {
  readonly loraAStart = this.registerModule('lora_A_start', new ParameterDict({ buffers: true }));
  readonly loraBStart = this.registerModule('lora_B_start', new ParameterDict({ buffers: true }));
  readonly loraWeightDelta = this.registerModule('lora_weight_delta', new ParameterDict({ buffers: true }));

  // A Delta-LoRA layer must not take LoRA adapters (its base weight moves): another technique to core.
  override readonly methodName = DELTA_LORA_METHOD_NAME;

  override addAdapter(name: string, config: unknown): void {
    const { started = false, ...lora } = config as DeltaLoraLayerConfig;
    const held = this.adapterNames();
    if (held.length > 0) {
      throw new Error(
        `Delta-LoRA: layer already holds adapter "${held[0]}"; a layer holds one Delta-LoRA adapter because it moves the base weight (export it as LoRA with deltaLoraToLora to combine adapters)`,
      );
    }
    if ((lora.dropout ?? 0) !== 0) throw new Error('Delta-LoRA: the low-rank branch has no dropout');
    if (lora.loraBias) throw new Error('Delta-LoRA: lora_bias is not supported');
    super.addAdapter(name, { ...lora, dropout: 0 });
    // The snapshot is the initial A and B (consistent even if nothing is loaded over it), D is zero.
    if (started) this.start(name);
  }

  /**
   * Removing an adapter that is not merged takes its effect away entirely: W returns to the original
   * (`W − D`, up to float32 rounding). One removed while merged (`mergeAndUnload`) keeps it: the
   * layer's weight stays `W_original + D + s·B·A`, the trained model.
   */
  override removeAdapter(name: string): void {
    const delta = this.#delta(name);
    if (delta && !this.mergedAdapters.includes(name)) delta.undo();
    this.#dropStart(name);
    super.removeAdapter(name);
  }

  /** Whether adapter `name`'s base weight has started moving (its start snapshot exists). */
  started(name: string): boolean {
    return this.#delta(name) !== undefined;
  }

  /** The live start snapshot and accumulated change of adapter `name`, or null before the start. */
  deltaState(name: string): DeltaState | null {
    const delta = this.#delta(name);
    if (!delta) return null;
    return {
      aStart: this.loraAStart.get(name)!.value,
      bStart: this.loraBStart.get(name)!.value,
      weightDelta: delta.value,
    };
  }

  /** Copies of adapter `name`'s A and B (taken before a step; the caller disposes them). */
  factors(name: string): LoraFactors {
    this.#requireAdapter(name);
    return {
      a: tf.clone(this.loraA.get(name)!.weight.value),
      b: tf.clone(this.loraB.get(name)!.weight.value),
    };
  }

  /** Take the start snapshot `A_{K+1}`, `B_{K+1}` from the current A and B; D starts at zero. */
  start(name: string): void {
    if (this.started(name)) throw new Error(`Delta-LoRA: adapter "${name}" has started already`);
    const current = this.factors(name);
    this.#setStart(name, current.a, current.b);
  }

  /**
   * Move the base weight by `ratio · s · (B·A − B_old·A_old)` (A, B: the current values), in the base
   * weight's layout, and add the same to D. `old` is not disposed.
   */
  moveBaseWeight(name: string, old: LoraFactors, ratio: number): void {
    const delta = this.#delta(name);
    if (!delta) throw new Error(`Delta-LoRA: adapter "${name}" has not started`);
    const a = this.loraA.get(name)!.weight.value;
    const b = this.loraB.get(name)!.weight.value;
    const factor = ratio * this.scaling(name);
    const update = tf.tidy(() =>
      // One product of rank 2r: [B | −B_old]·[A ; A_old] = B·A − B_old·A_old.
      this.#product(tf.concat([b, tf.neg(old.b)], 1), tf.concat([a, old.a], 0), factor),
    );
    delta.accumulate(update);
    update.dispose();
  }

  /**
   * Set or clear adapter `name`'s start snapshot and accumulated change (restoring a checkpoint). The
   * base weight moves with D; clearing undoes D.
   */
  setDeltaState(
    name: string,
    state: { aStart: tf.Tensor; bStart: tf.Tensor; weightDelta: tf.Tensor } | null,
  ): void {
    this.#requireAdapter(name);
    if (state === null) {
      this.#delta(name)?.undo();
      this.#dropStart(name);
      return;
    }
    if (!this.started(name)) this.start(name);
    this.loraAStart.get(name)!.assign(state.aStart);
    this.loraBStart.get(name)!.assign(state.bStart);
    this.#delta(name)!.assign(state.weightDelta);
  }

  /**
   * The effective low-rank factors of adapter `name` for the standard LoRA export, in LoRA's layout,
   * scaling included (so that the base plus `B'·A'` is the trained layer): started,
   * `A' = [A ; A_{K+1}]`, `B' = [(1+λ)s·B | −λs·B_{K+1}]` (rank 2r); not started, `A' = A`, `B' = s·B`.
   */
  exportFactors(name: string, ratio: number): { a: tf.Tensor; b: tf.Tensor } {
    this.#requireAdapter(name);
    const a = this.loraA.get(name)!.weight.value;
    const b = this.loraB.get(name)!.weight.value;
    const s = this.scaling(name);
    const state = this.deltaState(name);
    return tf.tidy(() => {
      if (!state) return { a: tf.clone(a), b: tf.mul(b, s) };
      return {
        a: tf.concat([a, state.aStart], 0),
        b: tf.concat([tf.mul(b, (1 + ratio) * s), tf.mul(state.bStart, -ratio * s)], 1),
      };
    });
  }

  /**
   * The telescoped change of W, `λ·s·(B·A − B_{K+1}·A_{K+1})`, in the base weight's layout (what D
   * equals up to float32 accumulation); zeros before the start.
   */
  telescopedDelta(name: string, ratio: number): tf.Tensor {
    const state = this.deltaState(name);
    if (!state) return tf.zerosLike(this.baseLayer.weight.value);
    const a = this.loraA.get(name)!.weight.value;
    const b = this.loraB.get(name)!.weight.value;
    return tf.tidy(() =>
      this.#product(
        tf.concat([b, tf.neg(state.bStart)], 1),
        tf.concat([a, state.aStart], 0),
        ratio * this.scaling(name),
      ),
    );
  }

  override forward(x: tf.Tensor): tf.Tensor {
    const name = this.adapterNames()[0];
    const delta = name === undefined ? undefined : this.#delta(name);
    const runsOriginal =
      delta !== undefined &&
      this.mergedAdapters.length === 0 &&
      (this.disabled || !this.activeAdapters.includes(name!));
    if (!runsOriginal) return super.forward(x);
    // The original layer without touching W: W·x − D·x.
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, this.baseLayer.inFeatures]);
      const moved = tf.matMul(x2, delta.value, false, !this.baseLayer.fanInFanOut);
      const y = this.baseLayer.forward(x2);
      const original = tf.sub(y, moved);
      return x.rank === 2 ? original : tf.reshape(original, [...lead, this.baseLayer.outFeatures]);
    });
  }

  /** `factor · b·a` (`[out, in]`) in the base weight's layout, transposing the small factors for Conv1D. */
  #product(b: tf.Tensor, a: tf.Tensor, factor: number): tf.Tensor {
    return tf.tidy(() => {
      const scaled = tf.mul(b, factor);
      return this.baseLayer.fanInFanOut
        ? tf.matMul(tf.transpose(a), tf.transpose(scaled))
        : tf.matMul(scaled, a);
    });
  }

  #requireAdapter(name: string): void {
    if (!this.adapterNames().includes(name))
      throw new Error(`Delta-LoRA: the layer has no adapter "${name}"`);
  }

  #delta(name: string): WeightDelta | undefined {
    return this.loraWeightDelta.get(name) as WeightDelta | undefined;
  }

  /** Register the start buffers (taking ownership of `a` and `b`) and a zero D. */
  #setStart(name: string, a: tf.Tensor, b: tf.Tensor): void {
    this.loraAStart.set(name, new Parameter(a, { requiresGrad: false }));
    this.loraBStart.set(name, new Parameter(b, { requiresGrad: false }));
    this.loraWeightDelta.set(name, new WeightDelta(this.baseLayer.weight));
  }

  #dropStart(name: string): void {
    this.loraAStart.delete(name)?.dispose();
    this.loraBStart.delete(name)?.dispose();
    this.loraWeightDelta.delete(name)?.dispose();
  }
}
