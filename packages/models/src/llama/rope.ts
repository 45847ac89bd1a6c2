import { addKeepingNothing } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { ModelConfigError } from '../config.js';
import type { LlamaConfig } from './config.js';

export const ROPE_TYPES = ['default', 'linear', 'llama3'] as const;

export interface RopeSpec {
  type: (typeof ROPE_TYPES)[number];
  theta: number;
  /** Inverse frequencies, `headDim / 2` of them, as transformers computes them in float32. */
  inverseFrequencies: Float32Array;
}

function ropeNumber(params: Record<string, unknown>, key: string, fallback?: number): number {
  const value = params[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ModelConfigError(
      `config.json: rope parameter "${key}" must be a number (got ${JSON.stringify(value)})`,
      key,
    );
  }
  return value;
}

/**
 * RoPE settings of a LLaMA-family config: transformers 5's `rope_parameters`, or the legacy
 * top-level `rope_theta` with `rope_scaling`. Types other than default, linear and llama3 are
 * rejected by name.
 */
export function ropeSpec(config: LlamaConfig): RopeSpec {
  const raw = config.rope_parameters ?? config.rope_scaling ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ModelConfigError('config.json: rope_parameters must be an object', 'rope_parameters');
  }
  const params = raw as Record<string, unknown>;
  if (Object.values(params).some((v) => typeof v === 'object' && v !== null)) {
    throw new ModelConfigError(
      'config.json: per-layer-type rope_parameters are not supported',
      'rope_parameters',
    );
  }
  const type = String(params.rope_type ?? params.type ?? 'default');
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ModelConfigError(
      `config.json: rope type "${type}" (rope_scaling / rope_parameters) is not supported (supported: ${ROPE_TYPES.join(', ')})`,
      'rope_parameters',
    );
  }
  const partial = params.partial_rotary_factor ?? config.partial_rotary_factor ?? 1;
  if (partial !== 1) {
    throw new ModelConfigError(
      `config.json: partial_rotary_factor ${partial} is not supported`,
      'partial_rotary_factor',
    );
  }
  const theta = ropeNumber(params, 'rope_theta', config.rope_theta ?? 10000);
  const dim = config.head_dim;
  const inverse = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inverse[i] = 1 / Math.fround(theta ** Math.fround((2 * i) / dim));
  if (type === 'linear') {
    const factor = ropeNumber(params, 'factor');
    for (let i = 0; i < inverse.length; i++) inverse[i]! /= factor;
  } else if (type === 'llama3') {
    // transformers' _compute_llama3_parameters.
    const factor = ropeNumber(params, 'factor');
    const low = ropeNumber(params, 'low_freq_factor');
    const high = ropeNumber(params, 'high_freq_factor');
    const context = ropeNumber(params, 'original_max_position_embeddings', config.max_position_embeddings);
    const lowWavelength = context / low;
    const highWavelength = context / high;
    for (let i = 0; i < inverse.length; i++) {
      const f = inverse[i]!;
      const wavelength = (2 * Math.PI) / f;
      if (wavelength > lowWavelength) inverse[i] = f / factor;
      else if (wavelength >= highWavelength) {
        const smooth = (context / wavelength - low) / (high - low);
        inverse[i] = ((1 - smooth) * f) / factor + smooth * f;
      }
    }
  }
  return { type: type as RopeSpec['type'], theta, inverseFrequencies: Float32Array.from(inverse) };
}

/**
 * Rotary position embedding in transformers' rotate-half form: x·cos + rotate_half(x)·sin. The
 * rotation is a matmul with a fixed signed permutation `[D, D]` (exact, and fast on every backend)
 * instead of a split and concat of the halves.
 */
export class RotaryEmbedding {
  readonly headDim: number;
  readonly #inverse: tf.Tensor;
  readonly #rotateHalf: tf.Tensor;

  constructor(spec: RopeSpec, headDim: number) {
    this.headDim = headDim;
    const half = headDim / 2;
    this.#inverse = tf.tensor3d(spec.inverseFrequencies, [1, 1, half]);
    const rotation = new Float32Array(headDim * headDim);
    for (let j = 0; j < half; j++) {
      rotation[(j + half) * headDim + j] = -1; // out[j] = -x[j + half]
      rotation[j * headDim + j + half] = 1; // out[j + half] = x[j]
    }
    this.#rotateHalf = tf.tensor2d(rotation, [headDim, headDim]);
  }

  /** cos and sin for `[P, T]` positions, each `[P, T, 1, D]` (broadcast over heads). */
  cosSin(positionIds: tf.Tensor): { cos: tf.Tensor; sin: tf.Tensor } {
    return tf.tidy(() => {
      const [rows, length] = positionIds.shape as [number, number];
      const angles = tf.mul(tf.reshape(tf.cast(positionIds, 'float32'), [rows, length, 1]), this.#inverse);
      const full = tf.reshape(tf.concat([angles, angles], 2), [rows, length, 1, this.headDim]);
      return { cos: tf.cos(full), sin: tf.sin(full) };
    });
  }

  /** Rotates `x [B, T, H, D]`. */
  apply(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, this.headDim]), this.#rotateHalf), x.shape);
      return addKeepingNothing(tf.mul(x, cos), tf.mul(rotated, sin));
    });
  }

  dispose(): void {
    this.#inverse.dispose();
    this.#rotateHalf.dispose();
  }
}
