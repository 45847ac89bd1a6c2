import { describe, expect, it } from 'vitest';
import {
  accuracy,
  accuracyDifferenceMargin,
  linearGrowth,
  median,
  medianPerThread,
  medianRatio,
  medianSlowestExcess,
  modelFlopsUtilisation,
  perplexityFromLosses,
  perplexityFromNll,
  tokensPerSecond,
  trainingStepFlops,
  wilsonInterval,
} from './metrics.js';
import { timedSteps } from './run_technique.js';

describe('median', () => {
  it('takes the middle value, or the mean of the two middle values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('does not reorder its input and refuses an empty list', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
    expect(() => median([])).toThrow(/no values/);
  });
});

describe('medianPerThread', () => {
  it("takes each thread's median over the steps, not the median of a step", () => {
    // Thread 0: 1, 3, 2 -> 2; thread 1: 5, 4, 9 -> 5.
    expect(
      medianPerThread([
        [1, 5],
        [3, 4],
        [2, 9],
      ]),
    ).toEqual([2, 5]);
    expect(() => medianPerThread([])).toThrow(/no steps/);
  });
});

describe('medianRatio', () => {
  it("takes the median of the pairs' ratios, not the ratio of the medians", () => {
    // Ratios 2, 0.5, 3: median 2; the ratio of the medians would be 4 / 4 = 1.
    expect(medianRatio([2, 4, 6], [1, 8, 2])).toBe(2);
    expect(() => medianRatio([1, 2], [1])).toThrow(/differ in length/);
  });
});

describe('medianSlowestExcess', () => {
  it("takes each step's slowest thread over the step's mean, then the median over the steps", () => {
    // Excesses 1.2 / 1.1 - 1, 0 and 3 / 2 - 1: median 1/11.
    expect(
      medianSlowestExcess([
        [1, 1.2],
        [2, 2],
        [1, 3],
      ]),
    ).toBeCloseTo(1 / 11, 12);
    expect(medianSlowestExcess([[0.5, 0.5, 2]])).toBeCloseTo(1, 12);
    expect(() => medianSlowestExcess([[1], []])).toThrow(/no threads/);
    expect(() => medianSlowestExcess([])).toThrow(/no values/);
  });
});

describe('perplexity', () => {
  it('is exp of the mean negative log-likelihood per token', () => {
    expect(perplexityFromNll(2 * Math.log(4), 2)).toBeCloseTo(4, 12);
    expect(() => perplexityFromNll(1, 0)).toThrow(/no tokens/);
  });

  it('weights per-batch mean losses by their token counts', () => {
    // 100 tokens at loss 1 and 300 at loss 2: mean 1.75 nats/token.
    expect(perplexityFromLosses([1, 2], [100, 300])).toBeCloseTo(Math.exp(1.75), 12);
    expect(perplexityFromLosses([Math.log(10)], [5])).toBeCloseTo(10, 10);
    expect(() => perplexityFromLosses([1], [1, 2])).toThrow(/one token count per loss/);
  });
});

describe('accuracy', () => {
  it('is the fraction of correct predictions', () => {
    expect(accuracy([1, 0, 1, 1], [1, 1, 1, 0])).toBe(0.5);
    expect(accuracy([0], [0])).toBe(1);
    expect(() => accuracy([1], [1, 0])).toThrow();
    expect(() => accuracy([], [])).toThrow();
  });
});

describe('accuracy intervals', () => {
  it('Wilson intervals match published values', () => {
    // Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775.
    const [lo, hi] = wilsonInterval(81, 263);
    expect(lo).toBeCloseTo(0.2553, 4);
    expect(hi).toBeCloseTo(0.3662, 4);
    const [zeroLo, zeroHi] = wilsonInterval(0, 10);
    expect(zeroLo).toBe(0);
    expect(zeroHi).toBeCloseTo(0.2775, 4);
    expect(() => wilsonInterval(3, 2)).toThrow(/successes/);
  });

  it('the margin of a difference of accuracies is the normal approximation', () => {
    expect(accuracyDifferenceMargin(0.5, 0.5, 96)).toBeCloseTo(1.96 * Math.sqrt(0.5 / 96), 12);
    expect(accuracyDifferenceMargin(1, 0, 50)).toBe(0);
  });
});

describe('linearGrowth', () => {
  it('is the least-squares slope over the span, relative to the mean', () => {
    // y = 2 + x on x in [0, 2]: slope 1, span 2, mean 3.
    expect(linearGrowth([0, 1, 2], [2, 3, 4])).toBeCloseTo(2 / 3, 12);
    expect(linearGrowth([0, 1, 2, 3], [5, 5, 5, 5])).toBe(0);
    // Noise around a flat line: the fit, not the extremes.
    expect(linearGrowth([0, 1, 2, 3], [5, 6, 5, 6])).toBeCloseTo((0.2 * 3) / 5.5, 12);
    expect(() => linearGrowth([1], [1])).toThrow();
    expect(() => linearGrowth([1, 1], [1, 2])).toThrow(/equal/);
  });
});

describe('speed arithmetic', () => {
  it('tokens/s and MFU', () => {
    expect(tokensPerSecond(1024, 0.5)).toBe(2048);
    // 50 GFLOP in 2 s against a 25 GFLOP/s peak: 100%.
    expect(modelFlopsUtilisation(50e9, 2, 25e9)).toBeCloseTo(1, 12);
    expect(modelFlopsUtilisation(10e9, 2, 25e9)).toBeCloseTo(0.2, 12);
    expect(() => modelFlopsUtilisation(1, 0, 1)).toThrow();
  });

  it('counts a step of the bench shape as the platform notes do (~50 GFLOP for LoRA, ~70 for full)', () => {
    const layer = [384 * 1152, 384 * 384, 384 * 1536, 1536 * 384];
    const matmulWeights = [...Array.from({ length: 6 }, () => layer).flat(), 384 * 256];
    const shape = { batch: 8, length: 128, layers: 6, heads: 6, headDim: 64, prefixLength: 0, matmulWeights };
    const weights = matmulWeights.reduce((a, b) => a + b, 0);
    const tokens = 1024;
    const attention = 6 * 4 * 8 * 6 * 128 * 128 * 64;
    const lora = trainingStepFlops({ ...shape, trainableMatmulWeights: 0, adapterParams: 73_728 });
    expect(lora).toBe(2 * (2 * tokens * weights + attention) + 6 * tokens * 73_728);
    expect(lora / 1e9).toBeGreaterThan(45);
    expect(lora / 1e9).toBeLessThan(55);
    const full = trainingStepFlops({ ...shape, trainableMatmulWeights: weights, adapterParams: 0 });
    expect(full - (lora - 6 * tokens * 73_728)).toBe(2 * tokens * weights);
    // A prefix adds keys to every attention.
    const prefix = trainingStepFlops({
      ...shape,
      prefixLength: 20,
      trainableMatmulWeights: 0,
      adapterParams: 0,
    });
    expect(prefix - (lora - 6 * tokens * 73_728)).toBe(2 * 6 * 4 * 8 * 6 * 128 * 20 * 64);
  });

  it('leaves the two warm-up steps out of the step time', () => {
    expect(timedSteps([9, 8, 1, 2, 3])).toEqual([1, 2, 3]);
    expect(timedSteps([9, 2])).toEqual([2]);
    expect(timedSteps([5])).toEqual([5]);
  });
});
