// The bench's arithmetic, kept apart so that it is tested on its own.

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median: no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Median over the steps of the slowest thread's time over the threads' mean, minus 1 (each step's
 * seconds per thread): what waiting for the last of equal shards costs a synchronous step.
 */
export function medianSlowestExcess(steps: readonly (readonly number[])[]): number {
  return median(
    steps.map((seconds) => {
      if (seconds.length === 0) throw new Error('medianSlowestExcess: a step with no threads');
      const mean = seconds.reduce((a, b) => a + b, 0) / seconds.length;
      return Math.max(...seconds) / mean - 1;
    }),
  );
}

/** Per thread, the median over the steps of its seconds (each step lists every thread's, in one order). */
export function medianPerThread(steps: readonly (readonly number[])[]): number[] {
  if (steps.length === 0) throw new Error('medianPerThread: no steps');
  return steps[0]!.map((_, thread) => median(steps.map((seconds) => seconds[thread]!)));
}

/** Median of the element-wise ratios `top[i] / bottom[i]` (paired measurements, taken side by side). */
export function medianRatio(top: readonly number[], bottom: readonly number[]): number {
  if (top.length !== bottom.length) throw new Error('medianRatio: the lists differ in length');
  return median(top.map((x, i) => x / bottom[i]!));
}

/** Perplexity from summed negative log-likelihoods (nats) and the number of tokens they cover. */
export function perplexityFromNll(totalNll: number, tokens: number): number {
  if (!(tokens > 0)) throw new Error('perplexity: no tokens');
  return Math.exp(totalNll / tokens);
}

/** Perplexity from per-batch mean losses (nats/token) and their token counts: a token-weighted mean. */
export function perplexityFromLosses(losses: readonly number[], tokens: readonly number[]): number {
  if (losses.length !== tokens.length) throw new Error('perplexity: one token count per loss');
  const total = losses.reduce((sum, loss, i) => sum + loss * tokens[i]!, 0);
  return perplexityFromNll(
    total,
    tokens.reduce((a, b) => a + b, 0),
  );
}

/** Fraction of predictions equal to their labels. */
export function accuracy(predictions: readonly number[], labels: readonly number[]): number {
  if (predictions.length !== labels.length || labels.length === 0)
    throw new Error('accuracy: predictions and labels must be non-empty and of the same length');
  return predictions.filter((p, i) => p === labels[i]).length / labels.length;
}

/** Tokens per second of a step. */
export function tokensPerSecond(tokensPerStep: number, stepSeconds: number): number {
  return tokensPerStep / stepSeconds;
}

/**
 * Model FLOPs utilisation: the FLOPs a step needs, over its time, over the backend's measured
 * matmul peak (FLOP/s).
 */
export function modelFlopsUtilisation(
  flopsPerStep: number,
  stepSeconds: number,
  peakFlopsPerSecond: number,
): number {
  if (!(stepSeconds > 0 && peakFlopsPerSecond > 0)) throw new Error('mfu: time and peak must be positive');
  return flopsPerStep / stepSeconds / peakFlopsPerSecond;
}

/** What one training step of a causal LM must compute, in matmul FLOPs (multiply-add = 2). */
export interface StepShape {
  batch: number;
  length: number;
  layers: number;
  heads: number;
  headDim: number;
  /** Extra keys each query attends to (prefix tuning's virtual tokens). */
  prefixLength: number;
  /** `in x out` of every matmul weight of the base model (attention, MLP, LM head). */
  matmulWeights: readonly number[];
  /** Sum of `in x out` over the base weights that train (full fine-tuning: all of them). */
  trainableMatmulWeights: number;
  /** Parameters of the adapter (0 for full fine-tuning). */
  adapterParams: number;
}

/**
 * FLOPs of one training step: the forward pass (2 per weight per token, plus attention's two
 * batched matmuls), the backward pass through the activations (the same again), the weight
 * gradients of the base weights that train (2 per weight per token), and the adapter's own work
 * (6 per adapter parameter per token: forward, input and weight gradients). Work that a technique
 * adds beyond its parameters (VeRA's shared frozen projections) is not counted: MFU credits only
 * the model's necessary work.
 */
export function trainingStepFlops(shape: StepShape): number {
  const tokens = shape.batch * shape.length;
  const weights = shape.matmulWeights.reduce((a, b) => a + b, 0);
  const keys = shape.length + shape.prefixLength;
  // q·kᵀ and p·v per layer: 2 · 2·B·H·T·keys·headDim.
  const attention = shape.layers * 4 * shape.batch * shape.heads * shape.length * keys * shape.headDim;
  const forward = 2 * tokens * weights + attention;
  return 2 * forward + 2 * tokens * shape.trainableMatmulWeights + 6 * tokens * shape.adapterParams;
}

/**
 * Wilson score interval of a proportion (`successes` of `total`) at the normal quantile `z` (1.96:
 * 95%): the accuracy's sampling noise at the bench's test size, which can be ±10 points at 96
 * sentences, so differences inside it are not differences between techniques.
 */
export function wilsonInterval(successes: number, total: number, z = 1.96): [number, number] {
  if (!(Number.isInteger(total) && total > 0 && successes >= 0 && successes <= total))
    throw new Error(`wilsonInterval: need 0 <= successes <= total, total > 0 (got ${successes} of ${total})`);
  const p = successes / total;
  const z2 = z * z;
  const centre = (p + z2 / (2 * total)) / (1 + z2 / total);
  const half = (z / (1 + z2 / total)) * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** The 95% Wilson interval of an accuracy measured on `total` examples. */
export function accuracyInterval(value: number, total: number): [number, number] {
  return wilsonInterval(Math.round(value * total), total);
}

/**
 * Half-width of the 95% interval of the difference of two accuracies, each measured on `total`
 * sentences (normal approximation): `a` is no worse than `b` within noise when a >= b - this.
 */
export function accuracyDifferenceMargin(a: number, b: number, total: number, z = 1.96): number {
  if (!(total > 0)) throw new Error('accuracyDifferenceMargin: total must be positive');
  return z * Math.sqrt((a * (1 - a) + b * (1 - b)) / total);
}

/**
 * How much `ys` grows across the span of `xs` by the least-squares line through the points, relative
 * to their mean: slope · (max x − min x) / mean y. A per-token time that stays flat along the
 * context gives about 0 however noisy each point is; one that grows with the position (a cache
 * copied every token) gives its growth (0.94 for 8 -> 15.6 ms).
 */
export function linearGrowth(xs: readonly number[], ys: readonly number[]): number {
  if (xs.length !== ys.length || xs.length < 2) throw new Error('linearGrowth: need two or more points');
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  if (sxx === 0) throw new Error('linearGrowth: the x values are all equal');
  return ((sxy / sxx) * (Math.max(...xs) - Math.min(...xs))) / my;
}
