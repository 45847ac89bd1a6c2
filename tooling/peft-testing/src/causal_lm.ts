// The causal-LM loss and logits the tests and fixture scripts compute on @peft/models' models, and the
// seeded token ids they feed them.
import type { CausalLM } from '@peft/models';
import type * as tf from '@tensorflow/tfjs-core';

/** Mean next-token cross-entropy of a batch of token ids (transformers' `labels=input_ids`). */
export { causalLMLoss } from '@peft/models';

/** The model's logits `[batch, length, vocab]` for `ids`. */
export function logitsOf(model: CausalLM, ids: number[][]): tf.Tensor {
  return model.forward({ inputIds: ids }).logits;
}

/** Deterministic token ids `[rows, length]` in `[1, vocab)` from a linear congruential generator. */
export function randomTokenIds(vocab: number, rows: number, length: number, seed: number): number[][] {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return 1 + (state % (vocab - 1));
  };
  return Array.from({ length: rows }, () => Array.from({ length }, next));
}
