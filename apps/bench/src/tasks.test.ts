import { describe, expect, it } from 'vitest';
import { encodeBytes, SENTIMENT_PROMPT } from './data.js';
import { accuracy } from './metrics.js';
import { prepareTaskData, sentimentReference, taskBatches } from './tasks.js';
import { WordNaiveBayes } from './word_naive_bayes.js';

describe('sentimentReference', () => {
  const data = prepareTaskData({
    encode: encodeBytes,
    length: 128,
    seed: 42,
    evalWindows: 1,
    sentimentTest: 60,
    sotuTrainChars: 10_000,
  });

  it('trains on exactly the sentences the sentiment run sees, in its order', () => {
    const steps = 3;
    const batch = 4;
    const next = taskBatches(data, 'sentiment', batch, 42);
    const seen = Array.from({ length: steps }, next)
      .flat()
      .map((row) => {
        const text = new TextDecoder().decode(Uint8Array.from(row.ids));
        return text.slice(0, text.lastIndexOf(SENTIMENT_PROMPT));
      });
    const training = seen.map((tail, i) => {
      const example = data.sentimentTrain[i]!;
      expect(example.text.endsWith(tail)).toBe(true);
      return example;
    });
    const reference = sentimentReference(data, steps, batch);
    expect(reference.training_sentences).toBe(12);
    expect(reference.test_sentences).toBe(60);
    const classifier = new WordNaiveBayes(training);
    expect(reference.word_naive_bayes_accuracy).toBe(
      accuracy(
        data.sentimentTest.map((e) => classifier.predict(e.text)),
        data.sentimentTest.map((e) => e.label),
      ),
    );
    const [lo, hi] = reference.word_naive_bayes_interval;
    expect(lo).toBeLessThan(reference.word_naive_bayes_accuracy);
    expect(hi).toBeGreaterThan(reference.word_naive_bayes_accuracy);
    const positives = training.filter((e) => e.label === 1).length;
    const testPositives = data.sentimentTest.filter((e) => e.label === 1).length / 60;
    expect(reference.majority_class_accuracy).toBeCloseTo(
      positives > 6 ? testPositives : 1 - testPositives,
      12,
    );
  });

  it('never counts a sentence twice when the run is longer than the training split', () => {
    expect(sentimentReference(data, 10_000, 8).training_sentences).toBe(data.sentimentTrain.length);
  });
});
