// A reference point for the sentiment scores: a word-presence naive Bayes classifier trained on the
// same sentences the techniques train on. It needs no pretraining, so it shows what those few
// labelled sentences support by themselves; a fine-tuned model below it has learnt less from them
// than word counts do (at the built-in base model's scale, the model's features are the limit).
import type { SentimentExample } from './data.js';

/** Lower-case words (letters and apostrophes), each counted once per sentence. */
export function sentenceWords(text: string): Set<string> {
  return new Set(text.toLowerCase().match(/[a-z']+/g) ?? []);
}

/**
 * Bernoulli-style naive Bayes over the words present in a sentence, with add-one smoothing:
 * score(c) = log(n_c + 1) + Σ_{w in sentence, w seen in training} log((count_c(w) + 1) / (n_c + 2)),
 * where n_c is the number of training sentences of class c and count_c(w) how many contain w.
 * Words never seen in training are ignored; ties go to class 0.
 */
export class WordNaiveBayes {
  private readonly sentences: [number, number] = [0, 0];
  private readonly counts: [Map<string, number>, Map<string, number>] = [new Map(), new Map()];

  constructor(training: readonly Pick<SentimentExample, 'text' | 'label'>[]) {
    if (training.length === 0) throw new Error('WordNaiveBayes: no training sentences');
    for (const { text, label } of training) {
      this.sentences[label]++;
      const counts = this.counts[label];
      for (const word of sentenceWords(text)) counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }

  /** Log-score of each class for a sentence (up to a shared constant). */
  scores(text: string): [number, number] {
    const out: [number, number] = [0, 0];
    for (const label of [0, 1] as const) {
      const n = this.sentences[label];
      let score = Math.log(n + 1);
      for (const word of sentenceWords(text)) {
        if (!this.counts[0].has(word) && !this.counts[1].has(word)) continue;
        score += Math.log(((this.counts[label].get(word) ?? 0) + 1) / (n + 2));
      }
      out[label] = score;
    }
    return out;
  }

  predict(text: string): 0 | 1 {
    const [negative, positive] = this.scores(text);
    return positive > negative ? 1 : 0;
  }
}
