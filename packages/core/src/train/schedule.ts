/**
 * Learning-rate schedules as multipliers of the base learning rate, indexed by the number of
 * optimizer steps already taken (PyTorch `LambdaLR` semantics, as transformers' schedulers: the
 * first update uses `schedule(0)`, which is 0 during warm-up). Formulas are transformers'
 * `get_*_schedule_with_warmup` lr_lambdas.
 */
export type LearningRateSchedule = (step: number) => number;

export interface WarmupOptions {
  /** Steps of linear warm-up from 0 to the base rate. */
  warmupSteps: number;
}

export interface DecayOptions extends WarmupOptions {
  /** Total optimizer steps of the run; the rate reaches its minimum there. */
  trainingSteps: number;
}

export interface CosineOptions extends DecayOptions {
  /** Number of cosine waves; default 0.5 (decrease from the base rate to 0 once). */
  numCycles?: number;
}

function checkSteps(options: Partial<DecayOptions>): void {
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      throw new Error(`schedule: ${key} must be a non-negative integer (got ${value})`);
    }
  }
}

function warmup(step: number, warmupSteps: number): number {
  return step / Math.max(1, warmupSteps);
}

/** Constant after a linear warm-up (`get_constant_schedule_with_warmup`). */
export function constantScheduleWithWarmup({ warmupSteps }: WarmupOptions): LearningRateSchedule {
  checkSteps({ warmupSteps });
  return (step) => (step < warmupSteps ? warmup(step, warmupSteps) : 1);
}

/** Linear warm-up, then linear decay to 0 at `trainingSteps` (`get_linear_schedule_with_warmup`). */
export function linearScheduleWithWarmup({ warmupSteps, trainingSteps }: DecayOptions): LearningRateSchedule {
  checkSteps({ warmupSteps, trainingSteps });
  return (step) => {
    if (step < warmupSteps) return warmup(step, warmupSteps);
    return Math.max(0, (trainingSteps - step) / Math.max(1, trainingSteps - warmupSteps));
  };
}

/** Linear warm-up, then cosine decay (`get_cosine_schedule_with_warmup`). */
export function cosineScheduleWithWarmup({
  warmupSteps,
  trainingSteps,
  numCycles = 0.5,
}: CosineOptions): LearningRateSchedule {
  checkSteps({ warmupSteps, trainingSteps });
  return (step) => {
    if (step < warmupSteps) return warmup(step, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, trainingSteps - warmupSteps);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}

/** No schedule: the base rate throughout. */
export const constantSchedule: LearningRateSchedule = () => 1;
