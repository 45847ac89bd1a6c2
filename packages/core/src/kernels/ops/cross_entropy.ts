import * as tf from '@tensorflow/tfjs-core';
import { fusedKernelsActive, PEFT_CROSS_ENTROPY } from '../wasm/Fused.js';

export interface CrossEntropyOptions {
  /** Rows whose target is this count nothing (PyTorch's and transformers' -100 by default). */
  ignoreIndex?: number;
}

/** The targets as int32 values, one per row of logits, each a class or `ignoreIndex`. */
function checkedTargets(
  targets: tf.Tensor | ArrayLike<number>,
  rows: number,
  classes: number,
  ignoreIndex: number,
) {
  if (targets instanceof tf.Tensor && targets.dtype !== 'int32') {
    throw new Error(`crossEntropy: targets must be int32 class indices (got ${targets.dtype})`);
  }
  const values = targets instanceof tf.Tensor ? (targets.dataSync() as Int32Array) : targets;
  if (values.length !== rows) {
    throw new Error(`crossEntropy: ${values.length} targets for ${rows} rows of logits`);
  }
  const ids = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const target = values[i]!;
    if (target !== ignoreIndex && !(Number.isInteger(target) && target >= 0 && target < classes)) {
      throw new Error(
        `crossEntropy: target ${target} of row ${i} is not a class in [0, ${classes}) nor ignoreIndex (${ignoreIndex})`,
      );
    }
    ids[i] = target;
  }
  return ids;
}

/**
 * The mean cross-entropy of `logits` `[..., classes]` against integer class `targets` (one per row
 * of logits: a tensor of shape `[...]` or an array): PyTorch's `F.cross_entropy(logits, targets,
 * ignore_index=-100)`, the loss of transformers' `*ForCausalLM` on shifted labels. Rows whose target
 * is `ignoreIndex` count nothing: the mean is over the others (NaN when there are none, as in
 * PyTorch). A target outside `[0, classes)` that is not `ignoreIndex` is an error.
 *
 * Any backend (a log-softmax and a one-hot); on wasm with core's kernels registered the forward is
 * the backend's softmax and one read per row, and the backward one pass, `(softmax - onehot) · dy /
 * rows` (tfjs's `losses.softmaxCrossEntropy` takes ~10 kernels, three scalar exp passes and a
 * one-hot of the whole batch).
 */
export function crossEntropy(
  logits: tf.Tensor,
  targets: tf.Tensor | ArrayLike<number>,
  options: CrossEntropyOptions = {},
): tf.Scalar {
  const ignoreIndex = options.ignoreIndex ?? -100;
  if (logits.dtype !== 'float32')
    throw new Error(`crossEntropy: logits must be float32 (got ${logits.dtype})`);
  if (logits.rank < 1) throw new Error('crossEntropy: logits must have a class axis');
  const classes = logits.shape[logits.rank - 1]!;
  const rows = classes === 0 ? 0 : logits.size / classes;
  if (targets instanceof tf.Tensor && !tf.util.arraysEqual(targets.shape, logits.shape.slice(0, -1))) {
    throw new Error(
      `crossEntropy: targets of shape [${targets.shape}] for logits [${logits.shape}] (expected [${logits.shape.slice(0, -1)}])`,
    );
  }
  const ids = checkedTargets(targets, rows, classes, ignoreIndex);
  // The mean's denominator: a mean over no rows is 0/0, NaN, as in PyTorch.
  const counted = ids.reduce((n, id) => n + (id === ignoreIndex ? 0 : 1), 0);
  return tf.tidy(() => {
    const flat = tf.reshape(logits, [rows, classes]);
    const targetTensor = tf.tensor1d(ids, 'int32');
    if (rows > 0 && fusedKernelsActive(PEFT_CROSS_ENTROPY)) {
      const [loss] = tf
        .engine()
        .runKernel(
          PEFT_CROSS_ENTROPY,
          { logits: flat, targets: targetTensor },
          { ignoreIndex, counted },
        ) as tf.Tensor[];
      return loss as tf.Scalar;
    }
    const kept = tf.tensor1d(Array.from(ids, (id) => (id === ignoreIndex ? 0 : 1)));
    const classOf = tf.tensor1d(
      Array.from(ids, (id) => (id === ignoreIndex ? 0 : id)),
      'int32',
    );
    const picked = tf.sum(tf.mul(tf.logSoftmax(flat), tf.oneHot(classOf, classes)), 1);
    return tf.div(tf.neg(tf.sum(tf.mul(picked, kept))), counted) as tf.Scalar;
  });
}
