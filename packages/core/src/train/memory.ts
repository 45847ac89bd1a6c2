import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../nn/module.js';
import type { Optimizer } from './optimizer.js';

/** Where the bytes of a training setup go. */
export interface MemoryAccount {
  /** Frozen parameters and buffers (the base model in PEFT). */
  frozenBytes: number;
  /** Parameters with `requiresGrad`. */
  trainableBytes: number;
  /** Optimizer state (Adam's moments etc.); 0 without an optimizer. */
  optimizerBytes: number;
}

/** Bytes of a tensor's data as tfjs counts them (`tf.memory().numBytes`). */
export function tensorBytes(tensor: { size: number; dtype: tf.DataType }): number {
  return tensor.size * tf.util.bytesPerElement(tensor.dtype);
}

/** Bytes of frozen weights, trainable weights and optimizer state. Shared tensors count once. */
export function measureMemory(module: Module, optimizer?: Optimizer): MemoryAccount {
  let frozenBytes = 0;
  let trainableBytes = 0;
  for (const [, parameter] of module.namedParameters()) {
    if (parameter.requiresGrad) trainableBytes += tensorBytes(parameter.value);
    else frozenBytes += tensorBytes(parameter.value);
  }
  for (const [, buffer] of module.namedBuffers()) frozenBytes += tensorBytes(buffer.value);
  return { frozenBytes, trainableBytes, optimizerBytes: optimizer?.stateBytes() ?? 0 };
}

/** Result of `measureStepPeak`. */
export interface StepPeak<T> {
  result: T;
  /** Bytes held by all live tensors just before `fn` ran. */
  baselineBytes: number;
  /**
   * Highest total of live tensor bytes seen after any kernel ran inside `fn` (at least the baseline):
   * weights, optimizer state, and the activations and gradients alive at that moment.
   */
  peakBytes: number;
}

/**
 * Runs `fn` under `tf.profile` and reports the peak of live tensor bytes. tfjs counts bytes per
 * tensor in the engine, whichever the backend, so the figure means the same on cpu, wasm and webgpu
 * (memory a kernel allocates internally and frees before returning is not seen). `peakBytes −
 * baselineBytes` is what the step adds on top of what was already there.
 */
export async function measureStepPeak<T>(fn: () => T | Promise<T>): Promise<StepPeak<T>> {
  // A nested tf.profile would reset the outer one's kernel list and switch profiling off under it.
  if (tf.engine().state.profiling)
    throw new Error('measureStepPeak: already measuring (calls cannot be nested)');
  const baselineBytes = tf.memory().numBytes;
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  // tf.profile leaves profiling switched on if its function throws, so errors are carried out instead.
  const profile = await tf.profile(async () => {
    try {
      outcome = { ok: true, value: await fn() };
    } catch (error) {
      outcome = { ok: false, error };
    }
  });
  if (!outcome) throw new Error('measureStepPeak: the function did not complete');
  if (!outcome.ok) throw outcome.error;
  // With no kernel run, tf.profile reports -Infinity.
  const peakBytes = Math.max(baselineBytes, tf.memory().numBytes, profile.peakBytes);
  return { result: outcome.value, baselineBytes, peakBytes };
}
