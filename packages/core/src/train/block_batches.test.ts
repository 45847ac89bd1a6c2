import { describe, expect, it } from 'vitest';
import { manualSeed } from '../nn/random.js';
import { blockBatches } from './block_batches.js';

const take = <T>(batches: Generator<T[]>, count: number): T[][] =>
  Array.from({ length: count }, () => batches.next().value as T[]);

describe('blockBatches', () => {
  const blocks = [[0], [1], [2], [3], [4]];

  it('visits every block once per epoch, a new seeded order each epoch, filling a partial batch from the next', () => {
    manualSeed(3);
    const batches = take(blockBatches(blocks, 2), 5); // two epochs of five blocks
    expect(batches.every((batch) => batch.length === 2)).toBe(true);
    const ids = batches.flat().map(([id]) => id);
    expect([...ids.slice(0, 5)].sort()).toEqual([0, 1, 2, 3, 4]);
    expect([...ids.slice(5)].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(ids.slice(5)).not.toEqual(ids.slice(0, 5));
    // The batches hold the blocks themselves.
    expect(blocks).toContain(batches[0]![0]);
  });

  it('draws the same order again after the same seed', () => {
    manualSeed(11);
    const first = take(blockBatches(blocks, 3), 4);
    manualSeed(11);
    expect(take(blockBatches(blocks, 3), 4)).toEqual(first);
  });
});
