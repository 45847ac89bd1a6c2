import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { getSeedState, manualSeed, setSeedState } from '../nn/random.js';
import { AdamW } from './adamw.js';
import { clipGradNorm, globalNorm } from './clip.js';
import { type GradientSource, localGradients } from './gradient_source.js';
import { measureStepPeak } from './memory.js';
import type { Optimizer, OptimizerState } from './optimizer.js';
import { weightDecayGroups } from './parameter_groups.js';
import { constantSchedule, type LearningRateSchedule } from './schedule.js';

/** What one optimizer step did. */
export interface StepInfo {
  /** Optimizer steps taken so far, this one included (1 after the first). */
  step: number;
  /** Mean loss over the step's micro-batches. */
  loss: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens in the step's micro-batches, when `countTokens` is given. */
  tokens?: number;
  /** Peak live tensor bytes during the step, with `profileMemory`. */
  peakBytes?: number;
}

export type Metrics = Record<string, number>;

export interface TrainerCallbacks {
  onStep?(info: StepInfo): void | Promise<void>;
  onEval?(metrics: Metrics, step: number): void | Promise<void>;
}

export interface TrainerOptions<B> {
  module: Module;
  /**
   * The training loss of one micro-batch, computed from the module's forward. Must be synchronous (it
   * runs under `tf.variableGrads`); intermediate tensors are freed by the Trainer. The batch is not
   * disposed by the Trainer.
   */
  loss: (batch: B) => tf.Scalar;
  /**
   * Default: AdamW with its defaults over the trainable parameters, biases and norm weights not
   * decayed (`weightDecayGroups`).
   */
  optimizer?: Optimizer;
  /** Multiplier of the optimizer's learning rate per step; default constant. */
  schedule?: LearningRateSchedule;
  /** Micro-batches per optimizer step; their gradients are summed then divided by this. Default 1. */
  gradientAccumulationSteps?: number;
  /** Clip the global gradient norm to this (PyTorch `clip_grad_norm_`); default no clipping. */
  maxGradNorm?: number;
  callbacks?: TrainerCallbacks;
  /** Run `evaluate` every this many optimizer steps. */
  evalEvery?: number;
  /** Runs with the module in eval mode (dropout off); training mode is restored afterwards. */
  evaluate?: () => Metrics | Promise<Metrics>;
  /**
   * Reseeds the process-wide generator (`manualSeed`) when the Trainer is built, fixing dropout masks.
   * Seed weight initialisation separately, with `manualSeed` before building the model.
   */
  seed?: number;
  /** Tokens in a micro-batch, reported in `StepInfo.tokens`. */
  countTokens?: (batch: B) => number;
  /** Measure each step's peak tensor bytes (`StepInfo.peakBytes`); slower (kernels are profiled). */
  profileMemory?: boolean;
  /**
   * Where each micro-batch's loss and gradients come from: default `localGradients`
   * (`tf.variableGrads` on this thread); `DataParallelGradients` from `@peft/core/node` spreads
   * a batch over worker threads. Everything else (accumulation, clipping, the non-finite guard,
   * the optimizer, the schedule) is the Trainer's whatever the source.
   */
  gradients?: GradientSource<B>;
}

/** Everything needed to continue a run exactly: see `Trainer.getTrainingState`. */
export interface TrainingState {
  /** Optimizer steps taken; also the schedule's position. */
  step: number;
  /** The process-wide generator's state (`getSeedState`), for dropout masks. */
  seedState: number;
  /** Trainable parameters by dotted name. */
  parameters: Map<string, tf.Tensor>;
  optimizer: OptimizerState;
}

/** A non-finite loss or gradient norm; the step's update was not applied. */
export class NonFiniteLossError extends Error {
  override readonly name = 'NonFiniteLossError';

  constructor(
    /** The optimizer step (1-based) that would have been taken. */
    readonly step: number,
    readonly quantity: 'loss' | 'gradient norm',
    readonly value: number,
  ) {
    super(`non-finite ${quantity} at step ${step}: ${value}; the update was not applied`);
  }
}

/** Options of `Trainer.train`. */
export interface TrainOptions {
  /** Optimizer steps to take in this call; default: until the batches run out. */
  steps?: number;
}

export interface TrainResult {
  /** Optimizer steps taken by this call. */
  stepsTaken: number;
  /** The last step's report. */
  last?: StepInfo;
}

/** Reduced gradients of one step, before any read-back. */
interface StepGradients {
  loss: tf.Scalar;
  gradNorm: tf.Scalar;
  /** Aligned with the trainable parameters; undefined where no micro-batch produced a gradient. */
  grads: (tf.Tensor | undefined)[];
}

/**
 * A training loop over a module: gradient accumulation, clipping, a non-finite guard that applies
 * nothing, an optimizer, a schedule, evaluation, and exact state for checkpoints.
 *
 * The set of trainable parameters is fixed when the Trainer is built.
 */
export class Trainer<B> {
  readonly module: Module;
  readonly optimizer: Optimizer;
  readonly #options: TrainerOptions<B>;
  readonly #schedule: LearningRateSchedule;
  readonly #accumulationSteps: number;
  /** Trainable parameters and their dotted names, in module order. */
  readonly #trainable: [string, Parameter][];
  #step = 0;

  constructor(options: TrainerOptions<B>) {
    this.#options = options;
    this.module = options.module;
    this.#schedule = options.schedule ?? constantSchedule;
    this.#accumulationSteps = options.gradientAccumulationSteps ?? 1;
    if (!(Number.isInteger(this.#accumulationSteps) && this.#accumulationSteps >= 1)) {
      throw new Error(
        `Trainer: gradientAccumulationSteps must be a positive integer (got ${this.#accumulationSteps})`,
      );
    }
    if (options.maxGradNorm !== undefined && !(options.maxGradNorm > 0)) {
      throw new Error(`Trainer: maxGradNorm must be positive (got ${options.maxGradNorm})`);
    }
    if (options.evalEvery !== undefined && !(Number.isInteger(options.evalEvery) && options.evalEvery >= 1)) {
      throw new Error(`Trainer: evalEvery must be a positive integer (got ${options.evalEvery})`);
    }
    this.#trainable = [...this.module.namedParameters()].filter(([, p]) => p.requiresGrad);
    if (this.#trainable.length === 0) throw new Error('Trainer: the module has no trainable parameters');
    this.optimizer = options.optimizer ?? new AdamW(weightDecayGroups(this.module));
    const managed = new Set(this.optimizer.parameters());
    const unmanaged = this.#trainable.filter(([, p]) => !managed.has(p)).map(([name]) => name);
    if (unmanaged.length > 0) {
      throw new Error(
        `Trainer: trainable parameters not managed by the optimizer: ${unmanaged.slice(0, 10).join(', ')}`,
      );
    }
    if (options.seed !== undefined) manualSeed(options.seed);
  }

  /** Optimizer steps taken so far. */
  get step(): number {
    return this.#step;
  }

  /**
   * One optimizer step over exactly `gradientAccumulationSteps` micro-batches: mean loss and
   * gradients, clipping, a finite check (a non-finite loss or gradient norm throws
   * `NonFiniteLossError` and applies nothing), the optimizer update at the scheduled rate, callbacks.
   * Leaves the number of live tensors unchanged.
   */
  async trainStep(...microBatches: B[]): Promise<StepInfo> {
    if (microBatches.length !== this.#accumulationSteps) {
      throw new Error(
        `Trainer.trainStep: expected ${this.#accumulationSteps} micro-batch(es) (gradientAccumulationSteps), got ${microBatches.length}`,
      );
    }
    let info: StepInfo;
    if (this.#options.profileMemory) {
      const measured = await measureStepPeak(() => this.#takeStep(microBatches));
      info = { ...measured.result, peakBytes: measured.peakBytes };
    } else {
      info = await this.#takeStep(microBatches);
    }
    await this.#options.callbacks?.onStep?.(info);
    const { evalEvery, evaluate } = this.#options;
    if (evalEvery !== undefined && evaluate && info.step % evalEvery === 0) await this.evaluate();
    return info;
  }

  /** Run `evaluate` in eval mode and report to `onEval`. */
  async evaluate(): Promise<Metrics> {
    const evaluate = this.#options.evaluate;
    if (!evaluate) throw new Error('Trainer.evaluate: no evaluate function was given');
    this.module.eval();
    let metrics: Metrics;
    try {
      metrics = await evaluate();
    } finally {
      this.module.train();
    }
    await this.#options.callbacks?.onEval?.(metrics, this.#step);
    return metrics;
  }

  /**
   * Train over `batches` (micro-batches, grouped by `gradientAccumulationSteps`) until `steps` steps
   * are taken or the batches run out; an incomplete final group is not stepped on.
   */
  async train(batches: Iterable<B> | AsyncIterable<B>, options: TrainOptions = {}): Promise<TrainResult> {
    const { steps } = options;
    if (steps !== undefined && !(Number.isInteger(steps) && steps >= 0)) {
      throw new Error(`Trainer.train: steps must be a non-negative integer (got ${steps})`);
    }
    const result: TrainResult = { stepsTaken: 0 };
    if (steps === 0) return result;
    let group: B[] = [];
    for await (const batch of batches) {
      group.push(batch);
      if (group.length < this.#accumulationSteps) continue;
      result.last = await this.trainStep(...group);
      result.stepsTaken++;
      group = [];
      if (result.stepsTaken === steps) break;
    }
    return result;
  }

  async #takeStep(microBatches: B[]): Promise<StepInfo> {
    this.module.train();
    const stepNumber = this.#step + 1;
    const { loss, gradNorm, grads } = await this.#computeGradients(microBatches);
    try {
      const [lossValue, normValue] = await Promise.all([loss.data(), gradNorm.data()]);
      const lossNumber = lossValue[0]!;
      const normNumber = normValue[0]!;
      if (!Number.isFinite(lossNumber)) throw new NonFiniteLossError(stepNumber, 'loss', lossNumber);
      if (!Number.isFinite(normNumber)) throw new NonFiniteLossError(stepNumber, 'gradient norm', normNumber);
      this.optimizer.lrScale = this.#schedule(this.#step);
      const gradMap = new Map<Parameter, tf.Tensor>();
      this.#trainable.forEach(([, parameter], i) => {
        const grad = grads[i];
        if (grad) gradMap.set(parameter, grad);
      });
      this.optimizer.step(gradMap);
      this.#step = stepNumber;
      const info: StepInfo = {
        step: stepNumber,
        loss: lossNumber,
        lr: this.optimizer.lr,
        gradNorm: normNumber,
      };
      if (this.#options.countTokens) {
        info.tokens = microBatches.reduce((sum, batch) => sum + this.#options.countTokens!(batch), 0);
      }
      return info;
    } finally {
      tf.dispose([loss, gradNorm, ...grads.filter((g): g is tf.Tensor => g !== undefined)]);
    }
  }

  /**
   * Loss and gradients of each micro-batch from the gradient source, summed as they come (each
   * micro-batch's freed before the next); then the mean, the global norm and clipping.
   */
  async #computeGradients(microBatches: B[]): Promise<StepGradients> {
    const source = (this.#options.gradients ?? localGradients) as GradientSource<B>;
    const context = { module: this.module, parameters: this.#trainable, loss: this.#options.loss };
    const count = microBatches.length;
    const maxGradNorm = this.#options.maxGradNorm;
    let lossSum: tf.Tensor | undefined;
    let sums: (tf.Tensor | undefined)[] = this.#trainable.map(() => undefined);
    try {
      for (const batch of microBatches) {
        const result = await source.compute(batch, context);
        const previous = [lossSum, ...sums];
        [lossSum, ...sums] = tf.tidy(() => {
          const added = sums.map((sum, i) => {
            const grad = result.grads[i];
            if (!grad) return sum;
            return sum ? tf.add(sum, grad) : grad;
          });
          return [lossSum ? tf.add(lossSum, result.loss) : result.loss, ...added];
        });
        // Free the previous running sums and this micro-batch's results now (k× gradient memory).
        const kept = new Set([lossSum, ...sums]);
        tf.dispose(
          [...previous, result.loss, ...result.grads].filter(
            (t): t is tf.Tensor => t !== undefined && !kept.has(t),
          ),
        );
      }
      const totalLoss = lossSum!;
      const totals = sums;
      const [loss, gradNorm, ...grads] = tf.tidy(() => {
        const mean = (t: tf.Tensor) => (count === 1 ? t : tf.div(t, count));
        const meanGrads = totals.map((g) => (g ? mean(g) : undefined));
        const present = meanGrads.filter((g): g is tf.Tensor => g !== undefined);
        if (maxGradNorm === undefined) return [mean(totalLoss), globalNorm(present), ...meanGrads];
        const clipped = clipGradNorm(new Map(present.map((g, i) => [i, g])), maxGradNorm);
        let next = 0;
        return [
          mean(totalLoss),
          clipped.totalNorm,
          ...meanGrads.map((g) => (g ? clipped.grads.get(next++) : undefined)),
        ];
      });
      const out = { loss: loss as tf.Scalar, gradNorm: gradNorm as tf.Scalar, grads };
      const returned = new Set<tf.Tensor | undefined>([loss, gradNorm, ...grads]);
      tf.dispose([lossSum, ...sums].filter((t): t is tf.Tensor => t !== undefined && !returned.has(t)));
      return out;
    } catch (error) {
      tf.dispose([lossSum, ...sums].filter((t): t is tf.Tensor => t !== undefined));
      throw error;
    }
  }

  /** Free the optimizer's state (the module is the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }

  /**
   * The state to continue this run exactly: step (= schedule position), generator state, trainable
   * parameters, optimizer state. Tensors are live: save them, do not dispose them.
   */
  getTrainingState(): TrainingState {
    return {
      step: this.#step,
      seedState: getSeedState(),
      parameters: new Map(this.#trainable.map(([name, p]) => [name, p.value])),
      optimizer: this.optimizer.getState(),
    };
  }

  /**
   * Restore a state from `getTrainingState` (or a checkpoint). Every parameter name and shape and the
   * optimizer state are checked first: a mismatched state throws and restores nothing. Does not take
   * ownership of the tensors.
   */
  setTrainingState(state: TrainingState): void {
    const problems: string[] = [];
    if (!(Number.isInteger(state.step) && state.step >= 0))
      problems.push(`step must be a non-negative integer (got ${state.step})`);
    if (!(Number.isInteger(state.seedState) && state.seedState >= 0 && state.seedState <= 0xffffffff)) {
      problems.push(`seedState must be a 32-bit unsigned integer (got ${state.seedState})`);
    }
    const expected = new Set<string>();
    for (const [name, parameter] of this.#trainable) {
      expected.add(name);
      const value = state.parameters.get(name);
      if (!value) problems.push(`missing parameter "${name}"`);
      else if (!tf.util.arraysEqual(value.shape, parameter.shape)) {
        problems.push(`parameter "${name}" has shape [${value.shape}], the model's is [${parameter.shape}]`);
      }
    }
    for (const name of state.parameters.keys()) {
      if (!expected.has(name))
        problems.push(`unexpected parameter "${name}" (not a trainable parameter of the model)`);
    }
    if (problems.length > 0) {
      throw new Error(
        `Trainer.setTrainingState: ${problems.length} problem(s): ${problems.slice(0, 10).join('; ')}`,
      );
    }
    // Checks its own state and throws before changing anything; parameters are assigned only after.
    this.optimizer.setState(state.optimizer);
    for (const [name, parameter] of this.#trainable) parameter.assign(state.parameters.get(name)!);
    this.#step = state.step;
    setSeedState(state.seedState);
  }
}
