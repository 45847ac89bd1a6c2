import { describe, expect, it } from 'vitest';
import {
  encodeBytes,
  evalWindows,
  lmRow,
  loadMobyDick,
  loadSentimentExamples,
  loadSpeeches,
  parseSentimentFile,
  randomWindows,
  SENTIMENT_LABELS,
  SENTIMENT_PROMPT,
  sentimentRow,
  splitSentiment,
  splitSpeeches,
  splitTail,
} from './data.js';
import { createRng, shuffled } from './random.js';

describe('sentiment data (sentiment@5.0.2 fixtures)', () => {
  it('drops the unlabeled last entry of each file and keeps 3 x 1000 labelled sentences', () => {
    const examples = loadSentimentExamples();
    expect(examples).toHaveLength(3000);
    for (const source of ['imdb', 'yelp', 'amazon'] as const) {
      const ofSource = examples.filter((e) => e.source === source);
      expect(ofSource).toHaveLength(1000);
      expect(ofSource.filter((e) => e.label === 1)).toHaveLength(500);
    }
    expect(examples.every((e) => e.text.length > 0 && (e.label === 0 || e.label === 1))).toBe(true);
  });

  it('refuses an unlabeled entry that is not the last', () => {
    expect(
      parseSentimentFile(
        [
          { text: 'a', class: 1 },
          { text: '', class: null },
        ],
        'yelp',
      ),
    ).toEqual([{ text: 'a', label: 1, source: 'yelp' }]);
    expect(() =>
      parseSentimentFile(
        [
          { text: 'a', class: null },
          { text: 'b', class: 0 },
        ],
        'yelp',
      ),
    ).toThrow(/entry 0/);
  });

  it('splits deterministically into disjoint, balanced train and test sets', () => {
    const examples = loadSentimentExamples();
    const a = splitSentiment(examples, 42);
    const b = splitSentiment(examples, 42);
    expect(a).toEqual(b);
    expect(a.test).toHaveLength(600);
    expect(a.train).toHaveLength(2400);
    const key = (e: { source: string; text: string; label: number }) => `${e.source}|${e.label}|${e.text}`;
    const trainKeys = new Set(a.train.map(key));
    // The fixtures hold a few duplicate sentences; the split is disjoint by example, so compare counts.
    const all = new Map<string, number>();
    for (const e of examples) all.set(key(e), (all.get(key(e)) ?? 0) + 1);
    for (const e of a.test) if (trainKeys.has(key(e))) expect(all.get(key(e))).toBeGreaterThan(1);
    for (const source of ['imdb', 'yelp', 'amazon']) {
      expect(a.test.filter((e) => e.source === source && e.label === 1)).toHaveLength(100);
    }
    expect(splitSentiment(examples, 43).test).not.toEqual(a.test);
  });

  it('makes rows whose loss counts only the label tokens', () => {
    const row = sentimentRow(encodeBytes, 'Great!', 1, 40);
    expect(row.ids).toHaveLength(41);
    expect(row.mask).toHaveLength(40);
    const text = 'Great!' + SENTIMENT_PROMPT + SENTIMENT_LABELS[1];
    expect(row.ids.slice(0, text.length)).toEqual(encodeBytes(text));
    const counted = row.mask.flatMap((m, t) => (m ? [row.ids[t + 1]] : []));
    expect(counted).toEqual(encodeBytes(SENTIMENT_LABELS[1]));
    // Padding after the label is never counted.
    expect(row.ids.slice(text.length).every((id) => id === 0)).toBe(true);
  });

  it('cuts the start of a long sentence so that the label fits', () => {
    const row = sentimentRow(encodeBytes, 'x'.repeat(100), 0, 32);
    expect(row.ids).toHaveLength(33);
    const counted = row.mask.flatMap((m, t) => (m ? [row.ids[t + 1]] : []));
    expect(counted).toEqual(encodeBytes(SENTIMENT_LABELS[0]));
    expect(row.mask[row.mask.length - 1]).toBe(1);
  });
});

describe('text corpora', () => {
  it('holds out the last 5% of Moby-Dick', () => {
    const { train, heldOut } = loadMobyDick();
    const total = train.length + heldOut.length;
    expect(heldOut.length / total).toBeGreaterThan(0.045);
    expect(heldOut.length / total).toBeLessThan(0.055);
    expect(train.startsWith('CHAPTER 1. Loomings.')).toBe(true);
  });

  it('splitTail cuts at a line start', () => {
    const text = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    const { train, heldOut } = splitTail(text, 0.1);
    expect(train + heldOut).toBe(text);
    expect(heldOut.startsWith('line ')).toBe(true);
  });

  it('splits the speeches into disjoint sets of whole speeches, the same for the same seed', () => {
    const speeches = loadSpeeches();
    expect(speeches.length).toBeGreaterThan(200);
    const a = splitSpeeches(speeches, 42);
    expect(splitSpeeches(speeches, 42)).toEqual(a);
    const heldOut = speeches.filter((s) => a.heldOut.includes(s.text.trim()));
    expect(heldOut.length).toBe(Math.round(speeches.length * 0.1));
    for (const s of heldOut) expect(a.train.includes(s.text.trim())).toBe(false);
    expect(splitSpeeches(speeches, 7).heldOut).not.toBe(a.heldOut);
  });
});

describe('windows', () => {
  const tokens = Array.from({ length: 1000 }, (_, i) => i % 256);

  it('random windows are reproducible from the seed', () => {
    const a = randomWindows(tokens, 4, 16, createRng(1));
    expect(randomWindows(tokens, 4, 16, createRng(1))).toEqual(a);
    expect(a.every((w) => w.length === 17)).toBe(true);
  });

  it('evaluation windows do not overlap and are deterministic', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => i);
    const windows = evalWindows(ids, 31, 10);
    expect(windows).toHaveLength(10);
    const starts = windows.map((w) => w[0]!);
    starts.slice(1).forEach((start, i) => {
      expect(start - starts[i]!).toBeGreaterThanOrEqual(32);
    });
    expect(windows.every((w, i) => w.every((id, j) => id === starts[i]! + j))).toBe(true);
    expect(evalWindows(ids, 31, 10)).toEqual(windows);
    expect(() => evalWindows(ids.slice(0, 10), 31, 1)).toThrow();
  });

  it('lmRow counts every target', () => {
    expect(lmRow([1, 2, 3])).toEqual({ ids: [1, 2, 3], mask: [1, 1] });
  });

  it('shuffled is a seeded permutation', () => {
    const items = [1, 2, 3, 4, 5, 6, 7, 8];
    const a = shuffled(items, createRng(5));
    expect([...a].sort()).toEqual(items);
    expect(shuffled(items, createRng(5))).toEqual(a);
  });
});
