// The inference check's order: every state once per round, and over a whole turn of three rounds
// every state once in every position (none always first, none always right after a merge).
import { describe, expect, it } from 'vitest';
import { inferenceOrder } from './speed.js';

describe('inferenceOrder', () => {
  it('rotates base, unmerged and merged through every position in three rounds', () => {
    expect(inferenceOrder(0)).toEqual(['base', 'unmerged', 'merged']);
    expect(inferenceOrder(1)).toEqual(['unmerged', 'merged', 'base']);
    expect(inferenceOrder(2)).toEqual(['merged', 'base', 'unmerged']);
    expect(inferenceOrder(3)).toEqual(inferenceOrder(0));
    for (let position = 0; position < 3; position++) {
      const states = [0, 1, 2].map((round) => inferenceOrder(round)[position]);
      expect(new Set(states).size).toBe(3);
    }
  });
});
