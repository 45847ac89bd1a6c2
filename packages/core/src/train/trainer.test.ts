import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import '../backend/register_gradients.js';
import { Dropout } from '../nn/dropout.js';
import { freezeParameters } from '../nn/freeze.js';
import { LayerNorm } from '../nn/layer_norm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { manualSeed, nextSeed } from '../nn/random.js';
import { AdamW } from './adamw.js';
import type { Optimizer, OptimizerState } from './optimizer.js';
import { linearScheduleWithWarmup } from './schedule.js';
import { NonFiniteLossError, type StepInfo, Trainer, type TrainerOptions } from './trainer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A frozen projection, a trainable norm, dropout and a trainable head. */
class TinyModel extends Module {
  readonly body = this.registerModule('body', new Linear({ inFeatures: 4, outFeatures: 6 }));
  readonly norm = this.registerModule('norm', new LayerNorm({ dim: 6 }));
  readonly dropout: Dropout;
  readonly head = this.registerModule('head', new Linear({ inFeatures: 6, outFeatures: 2 }));

  constructor(dropout = 0) {
    super();
    this.dropout = this.registerModule('dropout', new Dropout(dropout));
    freezeParameters(this, /body\..*/);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.head.forward(this.dropout.forward(this.norm.forward(this.body.forward(x)))));
  }
}

interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
}

/** Deterministic values in [-1, 1) from a seed, without touching the process-wide generator. */
function values(count: number, seed: number): number[] {
  return Array.from({ length: count }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) % 1);
}

function makeBatch(rows: number, seed: number): Batch {
  return {
    x: tf.tensor(values(rows * 4, seed), [rows, 4]),
    y: tf.tensor(values(rows * 2, seed + 1000), [rows, 2]),
  };
}

/** Mean squared error: a mean over the batch, so micro-batch accumulation must reproduce it. */
function mseLoss(model: TinyModel) {
  return (batch: Batch) => tf.mean(tf.square(tf.sub(model.forward(batch.x), batch.y))) as tf.Scalar;
}

function snapshot(model: Module): Map<string, Float32Array> {
  return new Map([...model.namedParameters()].map(([name, p]) => [name, p.value.dataSync() as Float32Array]));
}

/** Plain SGD that keeps a copy of the gradients it was given: a second implementation of the interface. */
class RecordingSgd implements Optimizer {
  lrScale = 1;
  stepCount = 0;
  readonly received: Map<Parameter, Float32Array>[] = [];
  constructor(
    readonly params: Parameter[],
    readonly baseLr: number,
  ) {}
  get lr() {
    return this.baseLr * this.lrScale;
  }
  parameters() {
    return this.params;
  }
  step(grads: ReadonlyMap<Parameter, tf.Tensor>) {
    this.received.push(new Map([...grads].map(([p, g]) => [p, g.dataSync() as Float32Array])));
    tf.tidy(() => {
      for (const [p, g] of grads) p.assign(tf.sub(p.value, tf.mul(g, this.lr)));
    });
    this.stepCount++;
  }
  stateBytes() {
    return 0;
  }
  getState(): OptimizerState {
    return { tensors: new Map(), scalars: { step_count: this.stepCount } };
  }
  setState(state: OptimizerState) {
    this.stepCount = state.scalars.step_count!;
  }
  dispose() {}
}

const owned: { dispose(): void }[] = [];
afterEach(() => {
  for (const item of owned.splice(0)) item.dispose();
});

function setup(options: Partial<TrainerOptions<Batch>> = {}, dropout = 0, modelSeed = 1) {
  manualSeed(modelSeed);
  const model = new TinyModel(dropout);
  const trainer = new Trainer<Batch>({ module: model, loss: mseLoss(model), ...options });
  owned.push(model, trainer);
  return { model, trainer };
}

function batches(count: number, rows: number, firstSeed = 0): Batch[] {
  const made = Array.from({ length: count }, (_, i) => makeBatch(rows, firstSeed + i));
  owned.push({ dispose: () => tf.dispose(made.flatMap((b) => [b.x, b.y])) });
  return made;
}

describe('Trainer', () => {
  it('changes exactly the trainable parameters; frozen ones stay bit-identical', async () => {
    const { model, trainer } = setup({ optimizer: undefined });
    const before = snapshot(model);
    await trainer.train(batches(3, 4));
    expect(trainer.step).toBe(3);
    const after = snapshot(model);
    for (const [name, parameter] of model.namedParameters()) {
      if (parameter.requiresGrad) expect(after.get(name), name).not.toEqual(before.get(name));
      else expect(after.get(name), name).toEqual(before.get(name));
    }
    expect([...model.namedParameters()].filter(([, p]) => !p.requiresGrad).map(([n]) => n)).toEqual([
      'body.weight',
      'body.bias',
    ]);
  });

  it('leaks no tensor over 100 steps (accumulation and clipping on)', async () => {
    const { trainer } = setup({ gradientAccumulationSteps: 2, maxGradNorm: 0.5 });
    const data = batches(2, 3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) await trainer.trainStep(data[0]!, data[1]!);
    expect(tf.memory().numTensors).toBe(before);
    expect(trainer.step).toBe(100);
  });

  it('stops on a NaN loss with NonFiniteLossError and applies nothing', async () => {
    const { model, trainer } = setup({ maxGradNorm: 1 });
    await trainer.train(batches(2, 4));
    const before = snapshot(model);
    const optimizerBefore = [...trainer.optimizer.getState().tensors.values()].map((t) =>
      t.dataSync().slice(),
    );
    const tensorsBefore = tf.memory().numTensors;
    const poisoned = makeBatch(4, 99);
    const nanX = tf.tensor(
      values(16, 5).map((v, i) => (i === 3 ? Number.NaN : v)),
      [4, 4],
    );
    const error = await trainer.trainStep({ x: nanX, y: poisoned.y }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonFiniteLossError);
    expect((error as NonFiniteLossError).step).toBe(3);
    expect((error as NonFiniteLossError).quantity).toBe('loss');
    expect((error as NonFiniteLossError).value).toBeNaN();
    expect((error as Error).message).toMatch(/non-finite loss at step 3: NaN/);
    expect(snapshot(model)).toEqual(before);
    expect([...trainer.optimizer.getState().tensors.values()].map((t) => t.dataSync())).toEqual(
      optimizerBefore,
    );
    expect(trainer.optimizer.stepCount).toBe(2);
    expect(trainer.step).toBe(2);
    tf.dispose([nanX, poisoned.x, poisoned.y]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('stops on a non-finite gradient even when the loss is finite', async () => {
    manualSeed(3);
    const head = new Linear({ inFeatures: 2, outFeatures: 1, weight: tf.zeros([1, 2]) });
    owned.push(head);
    // d/dw sqrt(w²) at w = 0 is 0/0: a finite loss (0) with a NaN gradient.
    const trainer = new Trainer<null>({
      module: head,
      loss: () => tf.sum(tf.sqrt(tf.square(head.weight.value))),
    });
    owned.push(trainer);
    const error = (await trainer.trainStep(null).catch((e: unknown) => e)) as NonFiniteLossError;
    expect(error).toBeInstanceOf(NonFiniteLossError);
    expect(error.quantity).toBe('gradient norm');
    expect(head.weight.value.dataSync()).toEqual(new Float32Array([0, 0]));
  });

  it('accumulating 2 micro-batches of 1 equals one batch of 2 for a mean loss', async () => {
    const full = makeBatch(2, 7);
    const first = { x: tf.slice(full.x, [0, 0], [1, 4]), y: tf.slice(full.y, [0, 0], [1, 2]) };
    const second = { x: tf.slice(full.x, [1, 0], [1, 4]), y: tf.slice(full.y, [1, 0], [1, 2]) };
    owned.push({ dispose: () => tf.dispose([full.x, full.y, first.x, first.y, second.x, second.y]) });

    const run = async (accumulate: boolean) => {
      manualSeed(1);
      const model = new TinyModel();
      const trainable = [...model.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p);
      const optimizer = new RecordingSgd(trainable, 0.1);
      const trainer = new Trainer<Batch>({
        module: model,
        loss: mseLoss(model),
        optimizer,
        gradientAccumulationSteps: accumulate ? 2 : 1,
      });
      owned.push(model);
      const info = accumulate ? await trainer.trainStep(first, second) : await trainer.trainStep(full);
      return { info, grads: optimizer.received[0]!, params: snapshot(model), trainable };
    };
    const accumulated = await run(true);
    const whole = await run(false);
    expect(accumulated.info.loss).toBeCloseTo(whole.info.loss, 6);
    expect(accumulated.info.gradNorm).toBeCloseTo(whole.info.gradNorm, 6);
    const accumulatedGrads = [...accumulated.grads.values()];
    const wholeGrads = [...whole.grads.values()];
    expect(accumulatedGrads.length).toBe(4);
    const maxDifference = (a: Float32Array, b: Float32Array) =>
      Math.max(...a.map((v, j) => Math.abs(v - b[j]!)));
    accumulatedGrads.forEach((grad, i) => {
      expect(maxDifference(grad, wholeGrads[i]!), `gradient ${i}`).toBeLessThan(1e-6);
    });
    for (const [name, value] of accumulated.params) {
      expect(maxDifference(value, whole.params.get(name)!), name).toBeLessThan(1e-6);
    }
  });

  it('clips the gradient to maxGradNorm and reports the pre-clip norm', async () => {
    manualSeed(1);
    const model = new TinyModel();
    owned.push(model);
    const optimizer = new RecordingSgd(
      [...model.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p),
      0.1,
    );
    const trainer = new Trainer<Batch>({ module: model, loss: mseLoss(model), optimizer, maxGradNorm: 1e-3 });
    const info = await trainer.trainStep(batches(1, 4)[0]!);
    let squares = 0;
    for (const grad of optimizer.received[0]!.values()) for (const g of grad) squares += g * g;
    expect(info.gradNorm).toBeGreaterThan(1e-3);
    expect(Math.sqrt(squares)).toBeCloseTo(1e-3, 8);
  });

  it('is deterministic: same seed, bit-identical parameters; another dropout seed differs', async () => {
    const run = async (seed: number) => {
      const { model, trainer } = setup({ seed }, 0.3);
      await trainer.train(batches(5, 4));
      return snapshot(model);
    };
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(a).toEqual(b);
    expect(a.get('head.weight')).not.toEqual(c.get('head.weight'));
  });

  it('follows the schedule and reports lr, loss, grad norm and tokens to onStep', async () => {
    const reports: StepInfo[] = [];
    const { model, trainer } = setup({
      optimizer: undefined,
      schedule: linearScheduleWithWarmup({ warmupSteps: 2, trainingSteps: 6 }),
      countTokens: (batch) => batch.x.shape[0]!,
      gradientAccumulationSteps: 2,
      callbacks: { onStep: (info) => void reports.push(info) },
    });
    const before = snapshot(model);
    await trainer.train(batches(4, 3), { steps: 1 });
    // The first warm-up step has rate 0: AdamW with lr 0 leaves every parameter as it was.
    expect(snapshot(model)).toEqual(before);
    await trainer.train(batches(20, 3));
    expect(reports.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // AdamW default lr 1e-3 × (0, 0.5, then (6 − s)/4 floored at 0), s = steps already taken.
    const expectedLr = [0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0].map((scale) => 1e-3 * scale);
    reports.forEach((report, i) => {
      expect(report.lr).toBeCloseTo(expectedLr[i]!, 15);
    });
    for (const report of reports) {
      expect(report.tokens).toBe(6);
      expect(Number.isFinite(report.loss) && report.loss > 0).toBe(true);
      expect(report.gradNorm).toBeGreaterThan(0);
      expect(report.peakBytes).toBeUndefined();
    }
  });

  it('trains from an async iterable, evaluates every evalEvery steps in eval mode', async () => {
    const evaluations: [Record<string, number>, number][] = [];
    const modes: boolean[] = [];
    let model!: TinyModel;
    const setupResult = setup({
      evalEvery: 2,
      evaluate: () => {
        modes.push(model.training);
        return { answer: 42 };
      },
      callbacks: { onEval: (metrics, step) => void evaluations.push([metrics, step]) },
    });
    model = setupResult.model;
    const data = batches(10, 2);
    async function* stream() {
      for (const batch of data) yield batch;
    }
    const result = await setupResult.trainer.train(stream(), { steps: 5 });
    expect(result.stepsTaken).toBe(5);
    expect(result.last?.step).toBe(5);
    expect(evaluations).toEqual([
      [{ answer: 42 }, 2],
      [{ answer: 42 }, 4],
    ]);
    expect(modes).toEqual([false, false]);
    expect(model.training).toBe(true);
  });

  it('reports each step peak tensor bytes with profileMemory, growing with the batch', async () => {
    const { trainer } = setup({ profileMemory: true });
    const [smallBatch] = batches(1, 2);
    const [largeBatch] = batches(1, 64);
    const small = await trainer.trainStep(smallBatch!);
    // At least everything live between steps (weights, optimizer state, batches).
    expect(small.peakBytes).toBeGreaterThan(tf.memory().numBytes);
    const large = await trainer.trainStep(largeBatch!);
    // 62 more rows carry at least their [62, 6] activations through the step.
    expect(large.peakBytes! - small.peakBytes!).toBeGreaterThanOrEqual(62 * 6 * 4);
  });

  it('restores a training state exactly, and rejects a mismatched one restoring nothing', async () => {
    const data = batches(6, 3);
    const straight = setup({ seed: 5 }, 0.2);
    await straight.trainer.train(data);

    const first = setup({ seed: 5 }, 0.2);
    await first.trainer.train(data.slice(0, 3));
    const saved = first.trainer.getTrainingState();
    const copy = {
      ...saved,
      parameters: new Map([...saved.parameters].map(([n, t]) => [n, tf.clone(t)])),
      optimizer: {
        tensors: new Map([...saved.optimizer.tensors].map(([n, t]) => [n, tf.clone(t)])),
        scalars: { ...saved.optimizer.scalars },
      },
    };
    owned.push({
      dispose: () => tf.dispose([...copy.parameters.values(), ...copy.optimizer.tensors.values()]),
    });
    nextSeed(); // move the generator on, as a fresh process would have a different state

    const resumed = setup({ seed: 123 }, 0.2);
    const untouched = snapshot(resumed.model);
    const wrong = tf.zeros([3, 3]);
    owned.push(wrong);
    const bad = { ...copy, parameters: new Map(copy.parameters).set('head.weight', wrong) };
    expect(() => resumed.trainer.setTrainingState(bad)).toThrow(/"head.weight" has shape \[3,3\]/);
    const missing = new Map(copy.parameters);
    missing.delete('norm.bias');
    expect(() => resumed.trainer.setTrainingState({ ...copy, parameters: missing })).toThrow(
      /missing parameter "norm.bias"/,
    );
    const badOptimizer = { ...copy, optimizer: { tensors: new Map(), scalars: copy.optimizer.scalars } };
    expect(() => resumed.trainer.setTrainingState(badOptimizer)).toThrow(/missing tensor/);
    expect(snapshot(resumed.model)).toEqual(untouched);
    expect(resumed.trainer.step).toBe(0);

    resumed.trainer.setTrainingState(copy);
    expect(resumed.trainer.step).toBe(3);
    await resumed.trainer.train(data.slice(3));
    expect(snapshot(resumed.model)).toEqual(snapshot(straight.model));
  });

  it('requires the optimizer to manage every trainable parameter and the right micro-batch count', async () => {
    manualSeed(1);
    const model = new TinyModel();
    owned.push(model);
    const headOnly = new AdamW(model.head.namedParameters('head'));
    owned.push(headOnly);
    expect(() => new Trainer({ module: model, loss: mseLoss(model), optimizer: headOnly })).toThrow(
      /not managed by the optimizer: norm.weight, norm.bias/,
    );
    const { trainer } = setup({ gradientAccumulationSteps: 2 });
    await expect(trainer.trainStep(batches(1, 1)[0]!)).rejects.toThrow(/expected 2 micro-batch/);
  });
});

// The same loop on the wasm backend (the default in Node): real training changes, no leak, the guard.
describe('Trainer on wasm', () => {
  beforeAll(async () => {
    expect(await tf.setBackend('wasm')).toBe(true);
  });
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  it('trains the trainable parameters only, leaks nothing over 100 steps, and refuses a NaN loss', async () => {
    const { model, trainer } = setup({ gradientAccumulationSteps: 2, maxGradNorm: 1 }, 0.1);
    const data = batches(2, 3);
    const before = snapshot(model);
    const tensorsBefore = tf.memory().numTensors;
    let first: StepInfo | undefined;
    let last: StepInfo | undefined;
    for (let i = 0; i < 100; i++) {
      last = await trainer.trainStep(data[0]!, data[1]!);
      first ??= last;
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(last!.loss).toBeLessThan(first!.loss);
    const after = snapshot(model);
    for (const [name, parameter] of model.namedParameters()) {
      if (parameter.requiresGrad) expect(after.get(name), name).not.toEqual(before.get(name));
      else expect(after.get(name), name).toEqual(before.get(name));
    }
    const nanY = tf.fill([3, 2], Number.NaN);
    owned.push(nanY);
    await expect(trainer.trainStep(data[0]!, { x: data[1]!.x, y: nanY })).rejects.toThrow(NonFiniteLossError);
    expect(snapshot(model)).toEqual(after);
    expect(tf.memory().numTensors).toBe(tensorsBefore + 1);
  });
});
