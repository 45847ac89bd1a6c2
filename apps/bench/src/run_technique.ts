// One technique on one task: set up, train a fixed number of steps on the task's seeded batches,
// measure memory and speed along the way, evaluate.
import {
  cosineScheduleWithWarmup,
  Linear,
  type MemoryAccount,
  manualSeed,
  measureMemory,
  measureStepPeak,
  type PeftModel,
  Trainer,
} from '@peft/core';
import { type CausalLM, modelFiles } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import type { LabelledRow } from './data.js';
import { maskedLMLoss } from './lm.js';
import { median, type StepShape, trainingStepFlops } from './metrics.js';
import { type Evaluation, evaluate, type TaskData, type TaskName, taskBatches } from './tasks.js';
import { adapterFileBytes, setUpTechnique, type Technique } from './techniques.js';

export interface RunOptions {
  steps: number;
  batch: number;
  seed: number;
  /**
   * Forward-only and forward+backward timings, each this many times, one before each step from
   * step 3 on (0: no split).
   */
  timingRepeats: number;
  /** Measure memory, speed and the time split in this run. */
  measure: boolean;
  onStep?: (step: number, loss: number) => void;
}

export interface SpeedMeasurements {
  trainableParams: number;
  allParams: number;
  memory: MemoryAccount;
  peakBytes: number;
  /** Wall time of every step, the first (profiled for peak memory) included. */
  stepSeconds: number[];
  /** CPU time of this process during every step (user + system). */
  stepCpuSeconds: number[];
  /** Medians over the steps after two warm-up steps (fewer when the run is that short). */
  stepSecondsMedian: number;
  stepCpuSecondsMedian: number;
  /** CPU time of a forward pass alone, and of a forward+backward (medians). */
  forwardCpuSeconds: number | null;
  forwardBackwardCpuSeconds: number | null;
  flopsPerStep: number;
  adapterBytes: number;
}

export interface TaskRun {
  task: TaskName;
  losses: number[];
  evaluation: Evaluation;
  speed?: SpeedMeasurements;
}

/** Step time without warm-up: steps after the first two, or what there is. */
export function timedSteps(stepSeconds: readonly number[]): number[] {
  const skip = Math.min(2, stepSeconds.length - 1);
  return stepSeconds.slice(Math.max(0, skip));
}

/** FLOPs shape of a step on `model` before any adapter is added (its own matmul weights). */
export function stepShapeOf(
  model: CausalLM,
  batch: number,
  length: number,
): Omit<StepShape, 'trainableMatmulWeights' | 'adapterParams' | 'prefixLength'> {
  const matmulWeights: number[] = [];
  for (const [, module] of model.namedModules()) {
    if (module instanceof Linear) matmulWeights.push(module.inFeatures * module.outFeatures);
  }
  const info = model.attentionInfo;
  return {
    batch,
    length,
    layers: info.numLayers,
    heads: info.numHeads,
    headDim: info.headDim,
    matmulWeights,
  };
}

async function artifactBytes(technique: Technique, model: CausalLM, peft: PeftModel | null): Promise<number> {
  if (peft) return adapterFileBytes(technique, peft);
  // Full fine-tuning's artifact is the whole model (float32, as trained).
  let bytes = 0;
  for await (const [, data] of modelFiles(model)) bytes += data.length;
  return bytes;
}

/** Wall time and this process's CPU time (user + system) of one call, in seconds. */
export interface Timing {
  wall: number;
  cpu: number;
}

/**
 * Times `fn`. On a shared machine wall time also counts the time the process waited for a core;
 * CPU time counts only the work (tfjs runs single-threaded in Node), so it compares across runs
 * made under different load.
 */
export async function timeOnce(fn: () => Promise<unknown>): Promise<Timing> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const cpu = process.cpuUsage(cpu0);
  return { wall: (performance.now() - t0) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
}

/** Trains `technique` on `task` from a fresh copy of the base model; the model is disposed after. */
export async function runTechnique(
  technique: Technique,
  task: TaskName,
  loadBase: () => Promise<CausalLM>,
  data: TaskData,
  options: RunOptions,
): Promise<TaskRun> {
  const model = await loadBase();
  const shape = stepShapeOf(model, options.batch, data.length);
  manualSeed(options.seed); // the adapter's initial weights
  const setup = await setUpTechnique(technique, model, options.steps);
  const nextBatch = taskBatches(data, task, options.batch, options.seed);
  const loss = (rows: LabelledRow[]) => maskedLMLoss(model, rows);
  const trainer = new Trainer<LabelledRow[]>({
    module: setup.module,
    loss,
    optimizer: setup.optimizer,
    schedule: cosineScheduleWithWarmup({
      warmupSteps: Math.max(1, Math.round(options.steps / 10)),
      trainingSteps: options.steps,
    }),
    maxGradNorm: 1.0,
    seed: options.seed,
  });
  const losses: number[] = [];
  const stepSeconds: number[] = [];
  const stepCpuSeconds: number[] = [];
  let peakBytes = 0;
  let memory: MemoryAccount | undefined;
  const forwardTimes: number[] = [];
  const forwardBackwardTimes: number[] = [];
  const trainableVariables = () =>
    [...setup.module.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p.variable);
  try {
    for (let step = 1; step <= options.steps; step++) {
      const rows = nextBatch();
      // The split is timed on the step's batch before the step (nothing is updated), alternating a
      // forward and a forward+backward over steps 3, 4, ... so that it samples the same stretch of
      // the run (and the same machine load) as the step times.
      const splitIndex = step - 3;
      if (options.measure && splitIndex >= 0 && splitIndex < 2 * options.timingRepeats) {
        setup.module.train();
        if (splitIndex % 2 === 0) {
          forwardTimes.push(
            (
              await timeOnce(async () => {
                const value = tf.tidy(() => loss(rows));
                await value.data();
                value.dispose();
              })
            ).cpu,
          );
        } else {
          forwardBackwardTimes.push(
            (
              await timeOnce(async () => {
                const { value, grads } = tf.variableGrads(() => loss(rows), trainableVariables());
                await Promise.all([value.data(), ...Object.values(grads).map((g) => g.data())]);
                tf.dispose([value, ...Object.values(grads)]);
              })
            ).cpu,
          );
        }
      }
      let info: Awaited<ReturnType<typeof trainer.trainStep>> | undefined;
      const timing = await timeOnce(async () => {
        if (options.measure && step === 1) {
          const measured = await measureStepPeak(() => trainer.trainStep(rows));
          info = measured.result;
          peakBytes = measured.peakBytes;
        } else {
          info = await trainer.trainStep(rows);
        }
      });
      stepSeconds.push(timing.wall);
      stepCpuSeconds.push(timing.cpu);
      if (step === 1) memory = measureMemory(setup.module, setup.optimizer);
      losses.push(info!.loss);
      options.onStep?.(step, info!.loss);
    }
    setup.module.eval();
    const evaluation = evaluate(model, data, [task], options.batch);
    const run: TaskRun = { task, losses, evaluation };
    if (options.measure) {
      const { trainable, all } = (setup.peft ?? model).countParameters();
      const kind = setup.peft ? setup.peft.adapter(setup.peft.activeAdapter!).method.kind : null;
      const prefixLength = kind === 'prompt' ? (model.attentionPrefix?.length ?? 0) : 0;
      run.speed = {
        trainableParams: trainable,
        allParams: all,
        memory: memory!,
        peakBytes,
        stepSeconds,
        stepCpuSeconds,
        stepSecondsMedian: median(timedSteps(stepSeconds)),
        stepCpuSecondsMedian: median(timedSteps(stepCpuSeconds)),
        forwardCpuSeconds: forwardTimes.length > 0 ? median(forwardTimes) : null,
        forwardBackwardCpuSeconds: forwardBackwardTimes.length > 0 ? median(forwardBackwardTimes) : null,
        flopsPerStep: trainingStepFlops({
          ...shape,
          prefixLength,
          trainableMatmulWeights: setup.peft ? 0 : shape.matmulWeights.reduce((a, b) => a + b, 0),
          adapterParams: kind === 'layer' ? trainable : 0,
        }),
        adapterBytes: await artifactBytes(technique, model, setup.peft),
      };
    }
    return run;
  } finally {
    trainer.dispose();
    setup.module.dispose();
  }
}
