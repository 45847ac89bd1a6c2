// Causal-LM losses and scores over `LabelledRow`s: the training loss (mean cross-entropy over the
// counted targets), per-row log-likelihoods (classification by comparing label continuations) and
// perplexity over held-out windows.
import { type CausalLM, causalLMLoss } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import type { LabelledRow } from './data.js';
import { perplexityFromNll } from './metrics.js';

/** Rows of a batch: the same length, and one mask entry per target. */
function checkRows(rows: readonly LabelledRow[]): void {
  const length = rows[0]!.ids.length;
  for (const row of rows) {
    if (row.ids.length !== length || row.mask.length !== length - 1)
      throw new Error('rows of a batch must have the same length, and one mask entry per target');
  }
}

/** Inputs (`ids` without the last), flat targets and flat mask of a batch of equal-length rows. */
function unpack(rows: readonly LabelledRow[]): { inputs: number[][]; targets: number[]; mask: number[] } {
  checkRows(rows);
  return {
    inputs: rows.map((r) => r.ids.slice(0, -1)),
    targets: rows.flatMap((r) => r.ids.slice(1)),
    mask: rows.flatMap((r) => r.mask),
  };
}

/**
 * The training loss of a batch: cross-entropy of each counted next-token prediction, averaged over
 * the counted targets (transformers' causal-LM loss with labels: `ids`, -100 where position t + 1
 * is not counted). Synchronous, for the Trainer's `tf.variableGrads`.
 */
export function maskedLMLoss(model: CausalLM, rows: readonly LabelledRow[]): tf.Scalar {
  checkRows(rows);
  const labels = rows.map((r) => r.ids.map((id, t) => (t === 0 || r.mask[t - 1] === 1 ? id : -100)));
  return causalLMLoss(
    model,
    rows.map((r) => r.ids),
    labels,
  );
}

/** Per row: the sum of the counted targets' log-probabilities and how many targets counted. */
export function rowLogLikelihoods(
  model: CausalLM,
  rows: readonly LabelledRow[],
): { logLikelihood: number[]; counted: number[] } {
  const { inputs, targets, mask } = unpack(rows);
  const width = rows[0]!.ids.length - 1;
  const sums = tf.tidy(() => {
    const { logits } = model.forward({ inputIds: inputs });
    const vocab = logits.shape[2]!;
    const logProbs = tf.logSoftmax(tf.reshape(logits, [-1, vocab]));
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(tf.tensor1d(targets, 'int32'), vocab)), -1);
    return tf.sum(tf.reshape(tf.mul(picked, tf.tensor1d(mask)), [rows.length, width]), -1);
  });
  const logLikelihood = Array.from(sums.dataSync());
  sums.dispose();
  const counted = rows.map((r) => r.mask.reduce((a, b) => a + b, 0));
  return { logLikelihood, counted };
}

/** Perplexity of the model over rows, `batchSize` rows per forward pass, in eval mode. */
export function perplexity(model: CausalLM, rows: readonly LabelledRow[], batchSize: number): number {
  let nll = 0;
  let tokens = 0;
  for (let i = 0; i < rows.length; i += batchSize) {
    const { logLikelihood, counted } = rowLogLikelihoods(model, rows.slice(i, i + batchSize));
    nll -= logLikelihood.reduce((a, b) => a + b, 0);
    tokens += counted.reduce((a, b) => a + b, 0);
  }
  return perplexityFromNll(nll, tokens);
}
