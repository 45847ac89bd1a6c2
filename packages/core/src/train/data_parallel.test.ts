// DataParallelGradients' choices that need no worker: how many threads a run gets when the user
// leaves it open, and refusing options that cannot work (the workers themselves:
// node/data_parallel_workers.test.ts).
import { describe, expect, it } from 'vitest';
import { DataParallelGradients } from './data_parallel.js';

const MiB = 1024 ** 2;

describe('DataParallelGradients.defaultThreads', () => {
  it('gives every core while the replicas fit the memory budget (1 GiB by default)', () => {
    expect(DataParallelGradients.defaultThreads({ cores: 4, modelBytes: 40 * MiB })).toBe(4);
    // 500 MiB a copy: two replicas fit 1 GiB, so three threads of the four cores.
    expect(DataParallelGradients.defaultThreads({ cores: 4, modelBytes: 500 * MiB })).toBe(3);
    expect(DataParallelGradients.defaultThreads({ cores: 8, modelBytes: 2048 * MiB })).toBe(1);
    expect(
      DataParallelGradients.defaultThreads({ cores: 8, modelBytes: 300 * MiB, memoryBytes: 600 * MiB }),
    ).toBe(3);
    expect(DataParallelGradients.defaultThreads({ cores: 1, modelBytes: 1 })).toBe(1);
  });
});

describe('DataParallelGradients.create', () => {
  it('refuses a thread count that is not a positive integer, before starting any worker', async () => {
    let started = 0;
    const startWorker = () => {
      started++;
      throw new Error('not expected');
    };
    for (const threads of [0, 1.5, Number.NaN]) {
      await expect(DataParallelGradients.create({ startWorker, threads })).rejects.toThrow(
        /threads must be a positive integer/,
      );
    }
    expect(started).toBe(0);
  });

  it('says when startWorker returns something that is no worker', async () => {
    await expect(
      DataParallelGradients.create({
        startWorker: () => ({ postMessage() {} }) as never,
        threads: 2,
      }),
    ).rejects.toThrow(
      /starting worker 1 failed: startWorker returned no worker \(it has no addEventListener, terminate\)/,
    );
  });
});
