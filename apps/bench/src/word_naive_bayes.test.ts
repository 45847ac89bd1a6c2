import { describe, expect, it } from 'vitest';
import { loadSentimentExamples, splitSentiment } from './data.js';
import { accuracy } from './metrics.js';
import { sentenceWords, WordNaiveBayes } from './word_naive_bayes.js';

describe('WordNaiveBayes', () => {
  it('splits sentences into lower-case words, once each', () => {
    expect([...sentenceWords("Great food, GREAT service; didn't like 2 of them!")]).toEqual([
      'great',
      'food',
      'service',
      "didn't",
      'like',
      'of',
      'them',
    ]);
  });

  it('scores by the smoothed formula, worked by hand', () => {
    const nb = new WordNaiveBayes([
      { text: 'bad food', label: 0 },
      { text: 'bad service', label: 0 },
      { text: 'good food', label: 1 },
    ]);
    // class 0: n=2, bad 2, food 1; class 1: n=1, good 1, food 1. "bad food" (unseen words ignored):
    const [s0, s1] = nb.scores('bad food and more');
    expect(s0).toBeCloseTo(Math.log(3) + Math.log(3 / 4) + Math.log(2 / 4), 12);
    expect(s1).toBeCloseTo(Math.log(2) + Math.log(1 / 3) + Math.log(2 / 3), 12);
    expect(nb.predict('bad food')).toBe(0);
    expect(nb.predict('good')).toBe(1);
  });

  it('beats chance on the UCI sentences from a few hundred training sentences', () => {
    const split = splitSentiment(loadSentimentExamples(), 42);
    const nb = new WordNaiveBayes(split.train.slice(0, 400));
    const test = split.test;
    const acc = accuracy(
      test.map((e) => nb.predict(e.text)),
      test.map((e) => e.label),
    );
    // Word counts carry the sentiment: well above the 50% of a balanced test set.
    expect(acc).toBeGreaterThan(0.65);
  });

  it('refuses an empty training set', () => {
    expect(() => new WordNaiveBayes([])).toThrow(/no training sentences/);
  });
});
