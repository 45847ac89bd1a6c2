import * as tf from '@tensorflow/tfjs-core';
import { addKeepingNothing } from '../nn/add_keeping_nothing.js';
import type { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';

/**
 * A linear layer wrapped by a technique: the base layer (at `base_layer`, as in PEFT) plus any number
 * of named adapters. Subclasses (one per technique) say how an adapter is built and what it adds to
 * the output; this class does the bookkeeping every technique shares: active adapters, disabling,
 * merging into the base weight and unmerging.
 */
export abstract class AdapterLayer extends Module {
  readonly baseLayer: Linear;
  #active: string[] = [];
  #merged: string[] = [];
  #disabled = false;

  constructor(baseLayer: Linear) {
    super();
    this.baseLayer = this.registerModule('base_layer', baseLayer);
  }

  /** The technique's registered name (`"lora"`), so adapters of different techniques never mix. */
  abstract readonly methodName: string;

  /** Create the tensors of adapter `name`. Must leave the layer unchanged if it throws. */
  abstract addAdapter(name: string, config: unknown): void;

  /** Dispose and forget the tensors of adapter `name`. */
  abstract removeAdapter(name: string): void;

  /** Names of the adapters this layer holds. */
  abstract adapterNames(): string[];

  /** What adapter `name` adds to the base output for input `x` (shape `[..., out]`). */
  protected abstract adapterOutput(name: string, x: tf.Tensor): tf.Tensor;

  /**
   * The weight change of adapter `name` in `[out, in]` layout, or null when the technique cannot be
   * merged. Core transposes it for Conv1D-layout bases.
   */
  abstract deltaWeight(name: string): tf.Tensor | null;

  /** The bias change of adapter `name`, if the technique has one. */
  deltaBias(_name: string): tf.Tensor | null {
    return null;
  }

  /** Make adapter `name`'s tensors trainable or frozen. Techniques with always-frozen parts override. */
  setAdapterTrainable(name: string, trainable: boolean): void {
    for (const [path, parameter] of this.namedParameters()) {
      if (path.startsWith('base_layer.')) continue;
      if (path.split('.').includes(name)) parameter.requiresGrad = trainable;
    }
  }

  get activeAdapters(): readonly string[] {
    return this.#active;
  }

  /** Set which of this layer's adapters run in the forward pass (names it lacks are ignored). */
  setActiveAdapters(names: readonly string[]): void {
    const held = new Set(this.adapterNames());
    this.#active = names.filter((name) => held.has(name));
  }

  get disabled(): boolean {
    return this.#disabled;
  }

  /** Disabled layers compute the base layer alone (unmerging first if needed). */
  setDisabled(disabled: boolean): void {
    if (disabled && this.#merged.length > 0) this.unmerge();
    this.#disabled = disabled;
  }

  get mergedAdapters(): readonly string[] {
    return this.#merged;
  }

  forward(x: tf.Tensor): tf.Tensor {
    if (this.#disabled || this.#merged.length > 0) return this.baseLayer.forward(x);
    return tf.tidy(() => {
      let y = this.baseLayer.forward(x);
      for (const name of this.#active) y = addKeepingNothing(y, this.adapterOutput(name, x));
      return y;
    });
  }

  /** The weight delta of `name` in the base weight's own layout. */
  #storageDelta(name: string): tf.Tensor {
    const delta = this.deltaWeight(name);
    if (!delta)
      throw new Error(`adapter "${name}" (${this.methodName}) cannot be merged into the base weights`);
    if (!this.baseLayer.fanInFanOut) return delta;
    const transposed = tf.transpose(delta);
    delta.dispose();
    return transposed;
  }

  /**
   * The base weight and bias with the given adapters (not yet merged) added, without changing
   * anything: the caller checks them and then commits with `commitMerge`. Returns null when all are
   * merged already.
   */
  computeMerge(
    names: readonly string[],
  ): { weight: tf.Tensor; bias: tf.Tensor | null; names: string[] } | null {
    const pending = names.filter((name) => !this.#merged.includes(name));
    if (pending.length === 0) return null;
    for (const name of pending) {
      if (!this.adapterNames().includes(name)) throw new Error(`layer has no adapter "${name}"`);
    }
    const [weight, bias] = tf.tidy(() => {
      let w: tf.Tensor = this.baseLayer.weight.value;
      let b: tf.Tensor | null = this.baseLayer.bias?.value ?? null;
      for (const name of pending) {
        w = tf.add(w, this.#storageDelta(name));
        const deltaBias = this.deltaBias(name);
        if (deltaBias) {
          if (!b) throw new Error(`adapter "${name}" changes a bias but the base layer has none`);
          b = tf.add(b, deltaBias);
        }
      }
      // Copies, so that the result never aliases the live variables.
      return b ? [tf.clone(w), tf.clone(b)] : [tf.clone(w)];
    });
    return { weight: weight!, bias: bias ?? null, names: pending };
  }

  /** Assign a result of `computeMerge` (taking ownership of its tensors). */
  commitMerge(result: { weight: tf.Tensor; bias: tf.Tensor | null; names: string[] }): void {
    this.baseLayer.weight.assign(result.weight);
    if (result.bias && this.baseLayer.bias) this.baseLayer.bias.assign(result.bias);
    result.weight.dispose();
    result.bias?.dispose();
    this.#merged.push(...result.names);
  }

  /** Merge adapters into the base weights (default: the active ones). */
  merge(names: readonly string[] = this.#active): void {
    const result = this.computeMerge(names);
    if (result) this.commitMerge(result);
  }

  /** Subtract every merged adapter again, last merged first. */
  unmerge(): void {
    while (this.#merged.length > 0) {
      const name = this.#merged[this.#merged.length - 1]!;
      tf.tidy(() => {
        this.baseLayer.weight.assign(tf.sub(this.baseLayer.weight.value, this.#storageDelta(name)));
        const deltaBias = this.deltaBias(name);
        if (deltaBias && this.baseLayer.bias) {
          this.baseLayer.bias.assign(tf.sub(this.baseLayer.bias.value, deltaBias));
        }
      });
      this.#merged.pop();
    }
  }

  /** Forget a merged adapter's bookkeeping (used when the layer is unloaded with its merge kept). */
  protected clearMergeRecord(): void {
    this.#merged = [];
  }

  /** Remove the adapter tensors; the base layer (merged or not) is handed back to the caller. */
  releaseBase(): Linear {
    for (const name of this.adapterNames()) this.removeAdapter(name);
    this.clearMergeRecord();
    return this.baseLayer;
  }
}
