import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import '../backend/register_gradients.js';
import { readSafetensorsAsTensors, writeSafetensors } from '../files/safetensors.js';
import { Dropout } from '../nn/dropout.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { getSeedState, manualSeed, nextSeed } from '../nn/random.js';
import { cosineScheduleWithWarmup } from '../train/schedule.js';
import { Trainer } from '../train/trainer.js';
import { CHECKPOINT_FILES, CheckpointError, resumeFromCheckpoint, saveCheckpoint } from './checkpoint.js';

let root: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await mkdtemp(join(tmpdir(), 'peft-checkpoint-'));
});
afterAll(async () => {
  tf.dispose(data.flatMap((batch) => [batch.x, batch.y]));
  await rm(root, { recursive: true, force: true });
});

/** A frozen projection, dropout, and a trainable head. */
class Model extends Module {
  readonly base = this.registerModule('base', new Linear({ inFeatures: 3, outFeatures: 5 }));
  readonly dropout = this.registerModule('dropout', new Dropout(0.25));
  readonly head = this.registerModule('head', new Linear({ inFeatures: 5, outFeatures: 2 }));
  constructor() {
    super();
    this.base.weight.requiresGrad = false;
    this.base.bias!.requiresGrad = false;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.head.forward(this.dropout.forward(this.base.forward(x))));
  }
}

interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
}

const data: Batch[] = Array.from({ length: 8 }, (_, i) => ({
  x: tf.tensor(
    Array.from({ length: 6 }, (_, j) => Math.sin(i * 3.1 + j)),
    [2, 3],
  ),
  y: tf.tensor(
    Array.from({ length: 4 }, (_, j) => Math.cos(i * 1.7 + j)),
    [2, 2],
  ),
}));

const created: { dispose(): void }[] = [];
afterEach(() => {
  for (const item of created.splice(0)) item.dispose();
});

/** Same model initialisation every time (seed 1); the Trainer reseeds the dropout generator with 9. */
function build() {
  manualSeed(1);
  const model = new Model();
  const trainer = new Trainer<Batch>({
    module: model,
    loss: (batch) => tf.mean(tf.square(tf.sub(model.forward(batch.x), batch.y))) as tf.Scalar,
    schedule: cosineScheduleWithWarmup({ warmupSteps: 2, trainingSteps: 8 }),
    maxGradNorm: 1,
    seed: 9,
  });
  created.push(model, trainer);
  return { model, trainer };
}

function snapshot(model: Module): Map<string, Float32Array> {
  return new Map([...model.namedParameters()].map(([name, p]) => [name, p.value.dataSync() as Float32Array]));
}

async function savedAfter(steps: number, name: string): Promise<string> {
  const { trainer } = build();
  await trainer.train(data.slice(0, steps));
  const dir = join(root, name);
  await saveCheckpoint(dir, trainer);
  return dir;
}

describe('checkpoints', () => {
  it('resuming and training on gives bit-identical parameters to training straight through', async () => {
    const straight = build();
    await straight.trainer.train(data);
    const expected = snapshot(straight.model);

    const dir = await savedAfter(3, 'resume');
    expect((await readdir(dir)).sort()).toEqual(Object.values(CHECKPOINT_FILES).sort()); // no temporary files left
    const state = JSON.parse(await readFile(join(dir, CHECKPOINT_FILES.state), 'utf8'));
    expect(state.step).toBe(3);

    nextSeed(); // a fresh process would start from another generator state
    const resumed = build();
    const tensorsBefore = tf.memory().numTensors;
    expect(await resumeFromCheckpoint(dir, resumed.trainer)).toBe(3);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(resumed.trainer.step).toBe(3);
    expect(getSeedState()).toBe(state.seedState);
    await resumed.trainer.train(data.slice(3));
    expect(snapshot(resumed.model)).toEqual(expected);
  });

  async function expectRejected(dir: string, message: RegExp): Promise<void> {
    const { model, trainer } = build();
    const before = snapshot(model);
    const optimizerBefore = [...trainer.optimizer.getState().tensors.values()].map((t) =>
      t.dataSync().slice(),
    );
    const seedBefore = getSeedState();
    const tensorsBefore = tf.memory().numTensors;
    const error = await resumeFromCheckpoint(dir, trainer).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(message);
    expect(snapshot(model)).toEqual(before);
    expect([...trainer.optimizer.getState().tensors.values()].map((t) => t.dataSync())).toEqual(
      optimizerBefore,
    );
    expect(trainer.step).toBe(0);
    expect(getSeedState()).toBe(seedBefore);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  }

  /** Rewrites the parameter file of `dir` with `edit` applied, keeping its metadata (save id). */
  async function rewriteParameters(
    dir: string,
    edit: (tensors: Map<string, tf.Tensor>) => void,
  ): Promise<void> {
    const path = join(dir, CHECKPOINT_FILES.parameters);
    const { tensors, metadata } = readSafetensorsAsTensors(await readFile(path));
    edit(tensors);
    await writeFile(path, writeSafetensors(tensors, metadata));
    tf.dispose([...tensors.values()]);
  }

  it('rejects a checkpoint missing a tensor, restoring nothing', async () => {
    const dir = await savedAfter(2, 'missing');
    await rewriteParameters(dir, (tensors) => {
      tensors.get('head.bias')!.dispose();
      tensors.delete('head.bias');
    });
    await expectRejected(dir, /missing parameter "head.bias"/);
  });

  it('rejects a tensor of the wrong shape, restoring nothing', async () => {
    const dir = await savedAfter(2, 'shape');
    await rewriteParameters(dir, (tensors) => {
      tensors.get('head.weight')!.dispose();
      tensors.set('head.weight', tf.zeros([5, 2]));
    });
    await expectRejected(dir, /"head.weight" has shape \[5,2\], the model's is \[2,5\]/);
  });

  it('rejects corrupt files and files from different saves', async () => {
    const corruptJson = await savedAfter(1, 'corrupt-json');
    await writeFile(join(corruptJson, CHECKPOINT_FILES.state), '{"format": ');
    await expectRejected(corruptJson, /cannot read trainer_state.json/);

    const truncated = await savedAfter(1, 'truncated');
    const bytes = await readFile(join(truncated, CHECKPOINT_FILES.optimizer));
    await writeFile(join(truncated, CHECKPOINT_FILES.optimizer), bytes.subarray(0, bytes.length - 4));
    await expectRejected(truncated, /cannot read optimizer.safetensors/);

    // An interrupted overwrite: the optimizer file of one save next to the rest of another.
    const first = await savedAfter(1, 'mixed');
    const other = await savedAfter(2, 'other');
    await writeFile(
      join(first, CHECKPOINT_FILES.optimizer),
      await readFile(join(other, CHECKPOINT_FILES.optimizer)),
    );
    await expectRejected(first, /optimizer.safetensors belongs to a different save/);

    await expectRejected(join(root, 'does-not-exist'), /cannot read trainer_state.json/);
  });
});
