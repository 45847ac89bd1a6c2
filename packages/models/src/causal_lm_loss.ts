import { crossEntropy } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM } from './causal_lm.js';

/**
 * The loss of transformers' `*ForCausalLM` called with `labels`: the mean cross-entropy of each
 * next token, where `labels` (default: `inputIds` themselves) are shifted inside, so that position
 * t predicts `labels[t + 1]`, and a label of -100 counts nothing. Rows are token ids of one length.
 * The model runs on each row but its last token (the logits of the positions that predict something,
 * the same as transformers' for a causal model), so a row of T + 1 tokens trains T predictions.
 * Synchronous: a `Trainer` loss.
 */
export function causalLMLoss(
  model: CausalLM,
  inputIds: readonly (readonly number[])[],
  labels: readonly (readonly number[])[] = inputIds,
): tf.Scalar {
  const length = inputIds[0]?.length ?? 0;
  if (length < 2) throw new Error(`causalLMLoss: rows need at least 2 tokens (got ${length})`);
  if (labels.length !== inputIds.length) {
    throw new Error(`causalLMLoss: ${labels.length} rows of labels for ${inputIds.length} rows of inputIds`);
  }
  for (const [i, row] of inputIds.entries()) {
    if (row.length !== length || labels[i]!.length !== length) {
      throw new Error(
        `causalLMLoss: row ${i} has ${row.length} input ids and ${labels[i]!.length} labels (expected ${length} of each, as row 0)`,
      );
    }
  }
  return tf.tidy(() => {
    const { logits } = model.forward({ inputIds: inputIds.map((row) => row.slice(0, -1)) });
    return crossEntropy(
      logits,
      labels.flatMap((row) => row.slice(1)),
      { ignoreIndex: -100 },
    );
  });
}
