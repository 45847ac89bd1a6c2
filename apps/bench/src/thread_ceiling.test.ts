// ThreadCeiling: the split run does the one-thread run's work (the same sum, from every thread),
// for the loop, the SIMD loop, the memory-bound copies and for matmul products (a worker with its
// own backend), pairs time each side whichever goes first, bad thread counts are refused, and the
// workers end with no tensor left behind.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, vi } from 'vitest';
import { startBackend } from './backend.js';
import { type CeilingWork, ThreadCeiling } from './thread_ceiling.js';

describe('ThreadCeiling', () => {
  it("splits the loop over this thread and the workers: the halves' sums add up to the whole", async () => {
    const ceiling = await ThreadCeiling.create(2, { kind: 'loop' }, 0.02);
    try {
      expect(ceiling.threads).toBe(2);
      expect(ceiling.units % 2).toBe(0);
      const whole = ceiling.alone(400);
      // 400 passes of 4096 products of 1.0001·0.9999 ≈ 1,638,399 (float32 products, double sum).
      expect(whole).toBeCloseTo(400 * 4096 * Math.fround(1.0001) * Math.fround(0.9999), 0);
      expect(await ceiling.split(400)).toBeCloseTo(whole, 3);
      expect(await ceiling.split(401)).toBeCloseTo(ceiling.alone(401), 3);
      const pair = await ceiling.pair();
      expect(pair.one).toBeGreaterThan(0);
      expect(pair.all).toBeGreaterThan(0);
    } finally {
      await ceiling.dispose();
    }
  });

  it.each([
    {
      what: 'matmul products (a worker running its own backend)',
      work: { kind: 'matmul', shape: [64, 32, 48], backend: 'wasm' },
    },
    { what: 'copies of an array (each thread its own)', work: { kind: 'stream' } },
  ] satisfies { what: string; work: CeilingWork }[])(
    'splits $what: each thread answers with the units it ran',
    async ({ work }) => {
      await startBackend('wasm');
      const tensors = tf.memory().numTensors;
      const ceiling = await ThreadCeiling.create(2, work, 0.02);
      try {
        expect(ceiling.work).toBe(work.kind);
        expect(ceiling.units % 2).toBe(0);
        expect(ceiling.alone(3)).toBe(3);
        // 4 units here, 3 in the worker.
        expect(await ceiling.split(7)).toBe(7);
        const pair = await ceiling.pair();
        expect(pair.one).toBeGreaterThan(0);
        expect(pair.all).toBeGreaterThan(0);
      } finally {
        await ceiling.dispose();
      }
      expect(tf.memory().numTensors).toBe(tensors);
    },
  );

  it('splits the SIMD loop: each thread runs its share of the iterations', async () => {
    await startBackend('wasm');
    const ceiling = await ThreadCeiling.create(2, { kind: 'simd' }, 0.02);
    try {
      expect(ceiling.work).toBe('simd');
      expect(ceiling.units % 2).toBe(0);
      // Both threads run 3 of the 6 iterations: the worker answers what this thread gets.
      expect(await ceiling.split(6)).toBe(2 * ceiling.alone(3));
      expect(ceiling.alone(3)).not.toBe(ceiling.alone(0));
      const pair = await ceiling.pair();
      expect(pair.one).toBeGreaterThan(0);
      expect(pair.all).toBeGreaterThan(0);
    } finally {
      await ceiling.dispose();
    }
  });

  it('times each side of a pair on its own, whichever side goes first', async () => {
    const ceiling = await ThreadCeiling.create(2, { kind: 'loop' }, 0.02);
    // A clock that only the work moves: 5 ms per run alone, 2 ms per split run.
    let now = 0;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => now);
    const calls: string[] = [];
    vi.spyOn(ceiling, 'alone').mockImplementation(() => {
      calls.push('alone');
      now += 5;
      return 0;
    });
    vi.spyOn(ceiling, 'split').mockImplementation(async () => {
      calls.push('split');
      now += 2;
      return 0;
    });
    try {
      expect(await ceiling.pair()).toEqual({ one: 0.005, all: 0.002 });
      expect(calls).toEqual(['alone', 'alone', 'split', 'split']);
      calls.length = 0;
      expect(await ceiling.pair(false)).toEqual({ one: 0.005, all: 0.002 });
      expect(calls).toEqual(['split', 'split', 'alone', 'alone']);
    } finally {
      clock.mockRestore();
      await ceiling.dispose();
    }
  });

  it('refuses fewer than two threads', async () => {
    await expect(ThreadCeiling.create(1)).rejects.toThrow('ThreadCeiling: threads must be >= 2, got 1');
  });
});
