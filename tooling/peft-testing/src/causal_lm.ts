// The causal-LM loss and logits the tests and fixture scripts compute on @peft/models' models, and the
// seeded token ids they feed them.
import type { CausalLM } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';

/** Mean next-token cross-entropy of a batch of token ids (as transformers' `labels=input_ids`). */
export function causalLMLoss(model: CausalLM, ids: number[][]): tf.Scalar {
  return tf.tidy(() => {
    const logits = model.forward({ inputIds: ids.map((row) => row.slice(0, -1)) }).logits;
    const vocab = logits.shape[2]!;
    const targets = tf.oneHot(
      tf.tensor1d(
        ids.flatMap((row) => row.slice(1)),
        'int32',
      ),
      vocab,
    );
    return tf.losses.softmaxCrossEntropy(targets, tf.reshape(logits, [-1, vocab])) as tf.Scalar;
  });
}

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
