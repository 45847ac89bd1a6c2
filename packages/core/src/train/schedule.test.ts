import { describe, expect, it } from 'vitest';
import {
  constantSchedule,
  constantScheduleWithWarmup,
  cosineScheduleWithWarmup,
  linearScheduleWithWarmup,
} from './schedule.js';

// Expected values worked out by hand from transformers' lr_lambda formulas
// (transformers/optimization.py), not by calling the code under test.
describe('learning-rate schedules', () => {
  it('constant with warm-up', () => {
    const schedule = constantScheduleWithWarmup({ warmupSteps: 4 });
    expect([0, 1, 2, 3, 4, 5, 1000].map(schedule)).toEqual([0, 0.25, 0.5, 0.75, 1, 1, 1]);
    expect(constantScheduleWithWarmup({ warmupSteps: 0 })(0)).toBe(1);
    expect(constantSchedule(123)).toBe(1);
  });

  it('linear warm-up then linear decay to 0', () => {
    const schedule = linearScheduleWithWarmup({ warmupSteps: 10, trainingSteps: 100 });
    // warm-up: step/10; decay: (100 - step)/90, floored at 0.
    const expected: [number, number][] = [
      [0, 0],
      [3, 0.3],
      [10, 1],
      [19, 81 / 90],
      [55, 0.5],
      [99, 1 / 90],
      [100, 0],
      [120, 0],
    ];
    for (const [step, value] of expected) expect(schedule(step), `step ${step}`).toBeCloseTo(value, 15);
    // No warm-up: the first step already uses the full rate.
    expect(linearScheduleWithWarmup({ warmupSteps: 0, trainingSteps: 4 })(0)).toBe(1);
  });

  it('linear warm-up then cosine decay', () => {
    const schedule = cosineScheduleWithWarmup({ warmupSteps: 10, trainingSteps: 100 });
    // progress = (step - 10)/90; value = 0.5·(1 + cos(π·progress)).
    const expected: [number, number][] = [
      [0, 0],
      [5, 0.5],
      [10, 1],
      [32, 0.85966990016933], // progress 22/90: 0.5·(1 + cos 44°)
      [55, 0.5], // progress 1/2
      [82, 0.09549150281253], // progress 0.8: 0.5·(1 + cos 144°)
      [100, 0],
      [110, 0.03015368960705], // past the end the wave rises again, as in transformers
    ];
    for (const [step, value] of expected) expect(schedule(step), `step ${step}`).toBeCloseTo(value, 12);
  });

  it('cosine with a full cycle comes back to the base rate', () => {
    const schedule = cosineScheduleWithWarmup({ warmupSteps: 0, trainingSteps: 8, numCycles: 1 });
    expect(schedule(0)).toBe(1);
    expect(schedule(2)).toBeCloseTo(0.5, 15);
    expect(schedule(4)).toBe(0);
    expect(schedule(8)).toBeCloseTo(1, 15);
  });

  it('rejects invalid step counts', () => {
    expect(() => linearScheduleWithWarmup({ warmupSteps: -1, trainingSteps: 10 })).toThrow(/warmupSteps/);
    expect(() => cosineScheduleWithWarmup({ warmupSteps: 1, trainingSteps: 2.5 })).toThrow(/trainingSteps/);
  });
});
