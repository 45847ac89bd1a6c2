import type { CausalLM } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';

/**
 * The causal language-modelling loss of transformers' `*ForCausalLM` with `labels=input_ids`: the
 * mean cross-entropy of predicting each token from those before it (the first token is not
 * predicted). Runs the first `length - 1` tokens, which gives the same logits for the predicted
 * positions as the full block.
 */
export function causalLMLoss(model: CausalLM, blocks: readonly (readonly number[])[]): tf.Scalar {
  const inputs = blocks.map((block) => block.slice(0, -1));
  const targets = blocks.flatMap((block) => block.slice(1));
  const { logits } = model.forward({ inputIds: inputs });
  const vocab = logits.shape[2]!;
  const oneHot = tf.oneHot(tf.tensor1d(targets, 'int32'), vocab);
  return tf.losses.softmaxCrossEntropy(oneHot, tf.reshape(logits, [-1, vocab])) as tf.Scalar;
}
