// Tiny causal LMs, batches and float64 linear algebra for the Delta-LoRA tests.
import '@tensorflow/tfjs-backend-cpu';
import { type Module, manualSeed } from '@peft/core';
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@peft/models';
import { randomTokenIds } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';

export const VOCAB = 24;

/** GPT-2 (Conv1D layout, `c_attn` 16→48) with dropout off, weights from `seed`. */
export function tinyGpt2(seed: number): GPT2LMHeadModel {
  manualSeed(seed);
  return new GPT2LMHeadModel({
    vocab_size: VOCAB,
    n_positions: 16,
    n_embd: 16,
    n_layer: 2,
    n_head: 2,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
  });
}

/** LLaMA (Linear layout, grouped-query attention), weights from `seed`. */
export function tinyLlama(seed: number): LlamaForCausalLM {
  manualSeed(seed);
  return new LlamaForCausalLM({
    vocab_size: VOCAB,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
  });
}

/** `count` batches, batch i from `seed + i`. */
export function batches(seed: number, count: number): number[][][] {
  return Array.from({ length: count }, (_, i) => randomTokenIds(VOCAB, 2, 8, seed + i));
}

export const INPUT_IDS = [
  [3, 1, 4, 1, 5, 9, 2],
  [6, 5, 3, 5, 8, 9, 7],
];

export function logitsOf(model: CausalLM, ids: number[][] = INPUT_IDS): tf.Tensor {
  return model.forward({ inputIds: ids }).logits;
}

/** Whether two tensors hold the same float32 bits. */
export function bitwiseEqual(a: tf.Tensor, b: tf.Tensor): boolean {
  if (!tf.util.arraysEqual(a.shape, b.shape)) return false;
  const x = new Uint32Array(Float32Array.from(a.dataSync()).buffer);
  const y = new Uint32Array(Float32Array.from(b.dataSync()).buffer);
  return x.every((bits, i) => bits === y[i]);
}

/** Copies of a module's tensors by dotted name. */
export function snapshot(module: Module): Map<string, tf.Tensor> {
  return new Map([...module.namedTensors()].map(([name, parameter]) => [name, tf.clone(parameter.value)]));
}

/** A tensor's values as a float64 row-major matrix. */
export function toFloat64Rows(tensor: tf.Tensor): number[][] {
  const [rows, cols] = tensor.shape as [number, number];
  const data = tensor.dataSync();
  return Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => data[i * cols + j]!));
}

/** `a − b` for float64 matrices. */
export function subtract(a: number[][], b: number[][]): number[][] {
  return a.map((row, i) => row.map((value, j) => value - b[i]![j]!));
}

/**
 * Singular values of a matrix, in float64: the square roots of the eigenvalues of the smaller Gram
 * matrix (MᵀM or MMᵀ), found by cyclic Jacobi rotations; largest first.
 */
export function singularValues(matrix: number[][]): number[] {
  const rows = matrix.length;
  const cols = matrix[0]!.length;
  const n = Math.min(rows, cols);
  const entry = (i: number, j: number) => (rows <= cols ? matrix[i]![j]! : matrix[j]![i]!);
  const inner = Math.max(rows, cols);
  const g = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => {
      let sum = 0;
      for (let k = 0; k < inner; k++) sum += entry(i, k) * entry(j, k);
      return sum;
    }),
  );
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += g[p]![q]! ** 2;
    if (off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const gpq = g[p]![q]!;
        if (gpq === 0) continue;
        const theta = (g[q]![q]! - g[p]![p]!) / (2 * gpq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const gkp = g[k]![p]!;
          const gkq = g[k]![q]!;
          g[k]![p] = c * gkp - s * gkq;
          g[k]![q] = s * gkp + c * gkq;
        }
        for (let k = 0; k < n; k++) {
          const gpk = g[p]![k]!;
          const gqk = g[q]![k]!;
          g[p]![k] = c * gpk - s * gqk;
          g[q]![k] = s * gpk + c * gqk;
        }
      }
    }
  }
  return g.map((row, i) => Math.sqrt(Math.max(row[i]!, 0))).sort((a, b) => b - a);
}
