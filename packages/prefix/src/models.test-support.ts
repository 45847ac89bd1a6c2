// Tiny random GPT-2 and LLaMA (grouped-query) models from @peft/models and a few tensor helpers,
// shared by the prefix-tuning tests.
import { manualSeed } from '@peft/core';
import { type CausalLM, GPT2LMHeadModel, LlamaForCausalLM } from '@peft/models';
import type * as tf from '@tensorflow/tfjs-core';

export const VOCAB = 40;

/** GPT-2 with 2 layers of 4 heads of 4 (token_dim 16), eval mode. */
export function tinyGPT2(seed = 1): GPT2LMHeadModel {
  manualSeed(seed);
  return new GPT2LMHeadModel({
    vocab_size: VOCAB,
    n_positions: 48,
    n_embd: 16,
    n_layer: 2,
    n_head: 4,
    initializer_range: 0.3,
  }).eval();
}

/** LLaMA with 2 layers, 4 query heads and 2 key/value heads of 4 (token_dim 8), eval mode. */
export function tinyLlama(seed = 2): LlamaForCausalLM {
  manualSeed(seed);
  return new LlamaForCausalLM({
    vocab_size: VOCAB,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 48,
    initializer_range: 0.3,
  }).eval();
}

export function logitsOf(model: CausalLM, ids: number[][]): number[][][] {
  const logits = model.forward({ inputIds: ids }).logits;
  const values = logits.arraySync() as number[][][];
  logits.dispose();
  return values;
}

/** A copy of every parameter's value by dotted name. */
export function snapshot(
  named: Iterable<readonly [string, { value: tf.Tensor }]>,
): Map<string, Float32Array> {
  return new Map([...named].map(([name, p]) => [name, p.value.dataSync().slice() as Float32Array]));
}
