// Tiny GPT-2 (Conv1D layout) and LLaMA (Linear layout) models from @peft/models for the LoRA-FA tests,
// matched LoRA / LoRA-FA pairs on them, and a look at what the gradient tape keeps.
import { manualSeed, type PeftModel } from '@peft/core';
import { getLoraModel, type LoraConfigInput } from '@peft/lora';
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@peft/models';
import { causalLMLoss } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { getLoraFaModel } from './model.js';

export const VOCAB = 48;

/** GPT-2 with 2 blocks of width 32 and no dropout in the base (deterministic training steps). */
export function tinyGpt2(seed = 0): GPT2LMHeadModel {
  manualSeed(seed);
  return new GPT2LMHeadModel({
    vocab_size: VOCAB,
    n_positions: 32,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
  });
}

/** LLaMA with 2 layers of width 32, grouped-query attention, Linear-layout projections. */
export function tinyLlama(seed = 0): LlamaForCausalLM {
  manualSeed(seed);
  return new LlamaForCausalLM({
    vocab_size: VOCAB,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
  });
}

export type Technique = 'lora' | 'lora-fa';

/**
 * The same base model and the same adapter initialisation (both techniques draw A and B in the same
 * order from the seeded generator) under LoRA or LoRA-FA.
 */
export function adapted(
  technique: Technique,
  config: LoraConfigInput,
  base: (seed?: number) => CausalLM = tinyGpt2,
  seed = 0,
): { model: CausalLM; peft: PeftModel<CausalLM> } {
  const model = base(seed);
  manualSeed(seed + 100);
  const peft = technique === 'lora' ? getLoraModel(model, config) : getLoraFaModel(model, config);
  return { model, peft };
}

/** Fixed token ids, `rows × length`, all below VOCAB. */
export function tokens(rows = 2, length = 9, seed = 1): number[][] {
  let state = seed;
  return Array.from({ length: rows }, () =>
    Array.from({ length }, () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state % VOCAB;
    }),
  );
}

/** Gradients of the loss for every trainable parameter, by name (copied out of tfjs). */
export function gradientsByName(peft: PeftModel<CausalLM>, ids: number[][]): Map<string, Float32Array> {
  const named = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad);
  const result = new Map<string, Float32Array>();
  tf.tidy(() => {
    const { grads } = tf.variableGrads(
      () => causalLMLoss(peft.model, ids),
      named.map(([, p]) => p.variable),
    );
    for (const [name, p] of named) result.set(name, grads[p.variable.name]!.dataSync() as Float32Array);
  });
  return result;
}

/**
 * Bytes of the distinct buffers the gradient tape keeps for the backward pass when `loss` has run
 * under `tf.variableGrads` (read from tfjs's tape at the end of the forward pass), leaving out the
 * model's own parameters (a MatMul keeps its weight too, but the weight is there anyway).
 */
export function keptForBackward(peft: PeftModel, loss: () => tf.Scalar): number {
  const own = new Set<object>();
  for (const [, p] of peft.namedTensors()) own.add((p.variable as unknown as { dataId: object }).dataId);
  let kept = 0;
  const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p.variable);
  tf.tidy(() => {
    tf.variableGrads(() => {
      const value = loss();
      const tape = (tf.engine() as unknown as { state: { activeTape: { saved?: tf.Tensor[] }[] } }).state
        .activeTape;
      const buffers = new Map<object, number>();
      for (const node of tape) {
        for (const t of node.saved ?? []) {
          const id = (t as unknown as { dataId: object }).dataId;
          if (!own.has(id)) buffers.set(id, t.size * tf.util.bytesPerElement(t.dtype));
        }
      }
      for (const bytes of buffers.values()) kept += bytes;
      return value;
    }, trainable);
  });
  return kept;
}
