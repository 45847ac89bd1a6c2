// The bench's two fine-tuning tasks and its forgetting probe, over whatever tokenizer the model has:
// (1) sentiment classification (UCI sentences) scored by accuracy, (2) domain adaptation to State of
// the Union speeches scored by held-out perplexity; Moby-Dick held-out perplexity before and after
// measures forgetting.
import type { CausalLM } from '@peft/models';
import {
  type Encode,
  evalWindows,
  type LabelledRow,
  lmRow,
  loadMobyDick,
  loadSentimentExamples,
  loadSpeeches,
  randomWindows,
  type SentimentExample,
  sentimentRow,
  splitSentiment,
  splitSpeeches,
} from './data.js';
import { perplexity, rowLogLikelihoods } from './lm.js';
import { accuracy, accuracyInterval } from './metrics.js';
import { createRng, type Rng } from './random.js';
import type { SentimentReference } from './results.js';
import { WordNaiveBayes } from './word_naive_bayes.js';

export type TaskName = 'sentiment' | 'sotu';
export const TASKS: readonly TaskName[] = ['sentiment', 'sotu'];

export interface TaskDataOptions {
  encode: Encode;
  /** Tokens per training row (the bench shape: 128). */
  length: number;
  seed: number;
  /** Held-out windows for each perplexity (SOTU, Moby-Dick). */
  evalWindows: number;
  /** Sentiment test examples scored (the first of the fixed test split). */
  sentimentTest: number;
  /** Characters of SOTU training text tokenized (enough for the run; speeches in shuffled order). */
  sotuTrainChars?: number;
}

export interface TaskData {
  length: number;
  encode: Encode;
  sotuTrain: number[];
  sotuHeldOut: LabelledRow[];
  mobyHeldOut: LabelledRow[];
  sentimentTrain: SentimentExample[];
  sentimentTest: SentimentExample[];
}

export function prepareTaskData(options: TaskDataOptions): TaskData {
  const { encode, length } = options;
  const sotu = splitSpeeches(loadSpeeches(), options.seed);
  const moby = loadMobyDick();
  const sentiment = splitSentiment(loadSentimentExamples(), options.seed);
  return {
    length,
    encode,
    sotuTrain: encode(sotu.train.slice(0, options.sotuTrainChars ?? 4_000_000)),
    sotuHeldOut: evalWindows(encode(sotu.heldOut), length, options.evalWindows).map(lmRow),
    mobyHeldOut: evalWindows(encode(moby.heldOut), length, options.evalWindows).map(lmRow),
    sentimentTrain: sentiment.train,
    sentimentTest: sentiment.test.slice(0, options.sentimentTest),
  };
}

/**
 * The training batches of a task, the same for every technique: a seeded stream of `batch` rows of
 * `length` tokens (SOTU: random windows; sentiment: the training sentences in a seeded order).
 */
export function taskBatches(
  data: TaskData,
  task: TaskName,
  batch: number,
  seed: number,
): () => LabelledRow[] {
  const rng: Rng = createRng(seed + (task === 'sotu' ? 1 : 2));
  if (task === 'sotu') return () => randomWindows(data.sotuTrain, batch, data.length, rng).map(lmRow);
  let next = 0;
  return () =>
    Array.from({ length: batch }, () => {
      const example = sentimentTrainingExample(data, next++);
      return sentimentRow(data.encode, example.text, example.label, data.length);
    });
}

/** The `index`-th sentence of the sentiment run's stream (the training split in its fixed order, cycled). */
function sentimentTrainingExample(data: TaskData, index: number): SentimentExample {
  return data.sentimentTrain[index % data.sentimentTrain.length]!;
}

/**
 * Reference points for the sentiment accuracies of a run of `steps` x `batch` sentences: word-presence
 * naive Bayes trained on exactly the sentences the runs see, and the training majority class, both
 * scored on the same test sentences.
 */
export function sentimentReference(data: TaskData, steps: number, batch: number): SentimentReference {
  const seen = Math.min(steps * batch, data.sentimentTrain.length);
  const training = Array.from({ length: seen }, (_, i) => sentimentTrainingExample(data, i));
  const classifier = new WordNaiveBayes(training);
  const labels = data.sentimentTest.map((e) => e.label);
  const naiveBayes = accuracy(
    data.sentimentTest.map((e) => classifier.predict(e.text)),
    labels,
  );
  const positives = training.filter((e) => e.label === 1).length;
  const majority = positives * 2 > training.length ? 1 : 0;
  return {
    training_sentences: seen,
    test_sentences: labels.length,
    word_naive_bayes_accuracy: naiveBayes,
    word_naive_bayes_interval: accuracyInterval(naiveBayes, labels.length),
    majority_class_accuracy: accuracy(
      labels.map(() => majority),
      labels,
    ),
  };
}

/**
 * Accuracy of classifying each test sentence by the log-likelihood of the two label continuations
 * (" negative" / " positive" after "\nSentiment:"): the likelier one is the prediction. Rows are
 * sorted by length and padded per batch to save work.
 */
export function sentimentAccuracy(model: CausalLM, data: TaskData, batchRows = 16): number {
  const rowsFor = (example: SentimentExample, label: 0 | 1) =>
    sentimentRow(data.encode, example.text, label, data.length);
  const order = data.sentimentTest
    .map((example, index) => ({ index, size: data.encode(example.text).length }))
    .sort((a, b) => a.size - b.size);
  const scores = new Map<number, [number, number]>();
  const perBatch = Math.max(1, Math.floor(batchRows / 2));
  for (let i = 0; i < order.length; i += perBatch) {
    const group = order.slice(i, i + perBatch);
    const rows = group.flatMap(({ index }) => [
      rowsFor(data.sentimentTest[index]!, 0),
      rowsFor(data.sentimentTest[index]!, 1),
    ]);
    const trimmed = trimPadding(rows);
    const { logLikelihood } = rowLogLikelihoods(model, trimmed);
    group.forEach(({ index }, j) => {
      scores.set(index, [logLikelihood[2 * j]!, logLikelihood[2 * j + 1]!]);
    });
  }
  const predictions = data.sentimentTest.map((_, i) => {
    const [negative, positive] = scores.get(i)!;
    return positive > negative ? 1 : 0;
  });
  return accuracy(
    predictions,
    data.sentimentTest.map((e) => e.label),
  );
}

/** Drops trailing columns where every row is padding (mask 0), keeping a multiple of 8 targets. */
export function trimPadding(rows: readonly LabelledRow[]): LabelledRow[] {
  let used = 0;
  for (const row of rows) {
    const last = row.mask.lastIndexOf(1);
    used = Math.max(used, last + 1);
  }
  const width = Math.min(rows[0]!.mask.length, Math.max(8, Math.ceil(used / 8) * 8));
  return rows.map((row) => ({ ids: row.ids.slice(0, width + 1), mask: row.mask.slice(0, width) }));
}

export interface Evaluation {
  /** Sentiment accuracy (sentiment runs and the base model). */
  accuracy?: number;
  /** Its 95% Wilson interval over the test sentences scored. */
  accuracyInterval?: [number, number];
  /** SOTU held-out perplexity (SOTU runs and the base model). */
  perplexity?: number;
  /** Moby-Dick held-out perplexity. */
  mobyPerplexity: number;
}

/** Scores `model` (in eval mode) on what a task measures, plus the forgetting probe. */
export function evaluate(
  model: CausalLM,
  data: TaskData,
  tasks: readonly TaskName[],
  batch: number,
): Evaluation {
  const out: Evaluation = { mobyPerplexity: perplexity(model, data.mobyHeldOut, batch) };
  if (tasks.includes('sentiment')) {
    out.accuracy = sentimentAccuracy(model, data, 2 * batch);
    out.accuracyInterval = accuracyInterval(out.accuracy, data.sentimentTest.length);
  }
  if (tasks.includes('sotu')) out.perplexity = perplexity(model, data.sotuHeldOut, batch);
  return out;
}
