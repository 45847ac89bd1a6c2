// DataParallelGradients on Node's worker threads: the same training as on one thread (to float rounding), no leaks on
// either side, and clear errors when a worker fails.
import { MessageChannel } from 'node:worker_threads';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerAllGradients } from '../backend/register_gradients.js';
import { manualSeed } from '../nn/random.js';
import { AdamW } from '../train/adamw.js';
import { DataParallelGradients, splitRows } from '../train/data_parallel.js';
import { serveDataParallelReplica } from '../train/data_parallel_replica.js';
import { Trainer } from '../train/trainer.js';
import { nodeDataParallelWorkers } from './data_parallel_workers.js';
import { type Row, rowsLoss, type SetupOptions, SmallModel } from './data_parallel_workers.test-support.js';
import { moduleWorker } from './module_worker.js';

const workerModule = new URL('./data_parallel_workers.test-support.ts', import.meta.url);
const started: DataParallelGradients<Row[]>[] = [];

beforeAll(async () => {
  registerAllGradients();
  await tf.setBackend('cpu');
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((g) => g.dispose()));
});

async function dataParallel(threads: number, setupOptions: SetupOptions = {}) {
  const gradients = await DataParallelGradients.create<Row[]>({
    startWorker: nodeDataParallelWorkers(workerModule),
    setupOptions,
    threads,
    backend: 'cpu',
  });
  started.push(gradients);
  return gradients;
}

function rows(count: number, seed: number): Row[] {
  const v = (i: number) => Math.sin(seed * 12.9898 + i * 78.233);
  return Array.from({ length: count }, (_, r) => ({
    x: [0, 1, 2, 3].map((j) => v(r * 8 + j)),
    y: [0, 1].map((j) => v(r * 8 + 4 + j)),
  }));
}

function trainer(model: SmallModel, gradients?: DataParallelGradients<Row[]>, accumulation = 1) {
  return new Trainer<Row[]>({
    module: model,
    loss: rowsLoss(model),
    optimizer: new AdamW(
      [...model.namedParameters()].filter(([, p]) => p.requiresGrad),
      { lr: 0.05 },
    ),
    maxGradNorm: 0.5,
    gradientAccumulationSteps: accumulation,
    ...(gradients ? { gradients } : {}),
  });
}

/** Every parameter of `got` within 1e-5 of `want`'s: the same training, to float rounding. */
function expectSameParameters(got: SmallModel, want: SmallModel): void {
  const expected = snapshot(want);
  for (const [name, values] of snapshot(got)) {
    const reference = expected.get(name)!;
    const worst = values.reduce((w, x, i) => Math.max(w, Math.abs(x - reference[i]!)), 0);
    expect(worst, name).toBeLessThan(1e-5);
  }
}

function snapshot(model: SmallModel): Map<string, Float32Array> {
  return new Map([...model.namedParameters()].map(([name, p]) => [name, p.value.dataSync() as Float32Array]));
}

describe('DataParallelGradients', () => {
  it('splits rows into even contiguous runs', () => {
    expect(splitRows([1, 2, 3, 4, 5, 6, 7], 3)).toEqual([
      [1, 2, 3],
      [4, 5],
      [6, 7],
    ]);
    expect(splitRows([1, 2], 3)).toEqual([[1], [2]]);
  });

  it('trains exactly as one thread does (3 threads, uneven shards, accumulation, clipping)', async () => {
    manualSeed(5);
    const single = new SmallModel();
    manualSeed(5);
    const parallel = new SmallModel();
    const gradients = await dataParallel(3);
    const one = trainer(single, undefined, 2);
    const many = trainer(parallel, gradients, 2);
    for (let step = 0; step < 4; step++) {
      const batches = [rows(7, 10 + step), rows(5, 20 + step)];
      const a = await one.trainStep(...batches);
      const b = await many.trainStep(...batches);
      expect(b.loss).toBeCloseTo(a.loss, 5);
      expect(b.gradNorm).toBeCloseTo(a.gradNorm, 5);
    }
    expectSameParameters(parallel, single);
    one.dispose();
    many.dispose();
  });

  it("reports each thread's time on its shard and this thread's wait", async () => {
    manualSeed(8);
    const model = new SmallModel();
    const gradients = await dataParallel(3);
    expect(gradients.lastStepTimings).toBeNull();
    const t = trainer(model, gradients);
    await t.trainStep(rows(6, 1));
    const timings = gradients.lastStepTimings!;
    expect(timings.shardSeconds).toHaveLength(3);
    for (const seconds of timings.shardSeconds) {
      expect(Number.isFinite(seconds) && seconds > 0, String(seconds)).toBe(true);
    }
    expect(timings.waitSeconds).toBeGreaterThanOrEqual(0);
    t.dispose();
  });

  it('leaks no tensor on the main thread or in the workers', async () => {
    manualSeed(6);
    const model = new SmallModel();
    const gradients = await dataParallel(2);
    const t = trainer(model, gradients);
    await t.trainStep(rows(6, 1));
    const main = tf.memory().numTensors;
    const workers = await gradients.workerMemory();
    for (let step = 0; step < 5; step++) await t.trainStep(rows(6, 2 + step));
    expect(tf.memory().numTensors).toBe(main);
    expect(await gradients.workerMemory()).toEqual(workers);
    t.dispose();
  });

  it('reports a failing worker step clearly and applies nothing', async () => {
    manualSeed(7);
    const model = new SmallModel();
    const gradients = await dataParallel(2, { failAtCall: 2 });
    const t = trainer(model, gradients);
    await t.trainStep(rows(4, 1));
    const before = snapshot(model);
    const tensors = tf.memory().numTensors;
    await expect(t.trainStep(rows(4, 2))).rejects.toThrow(
      /data-parallel worker 1 failed: loss failed on call 2/,
    );
    expect(snapshot(model)).toEqual(before);
    expect(tf.memory().numTensors).toBe(tensors);
    t.dispose();
  });

  it('reports a worker that exits', async () => {
    const model = new SmallModel();
    const gradients = await dataParallel(2, { exitAtCall: 1 });
    const t = trainer(model, gradients);
    await expect(t.trainStep(rows(4, 1))).rejects.toThrow(/data-parallel worker 1 exited with code 3/);
    t.dispose();
  });

  it('reports a failing setup when starting', async () => {
    await expect(dataParallel(2, { failSetup: true })).rejects.toThrow(
      /data-parallel worker 1 failed: setup failed: no model today/,
    );
  });

  it('refuses to compute after dispose', async () => {
    const model = new SmallModel();
    const gradients = await dataParallel(2);
    await gradients.dispose();
    const t = trainer(model, gradients);
    await expect(t.trainStep(rows(4, 1))).rejects.toThrow(/disposed/);
    t.dispose();
  });

  it('trains the same through the Web Worker shape: EventTarget ports on both ends, no Node adapter', async () => {
    // What a browser runs: the worker's scope and the page's Worker are EventTargets with
    // postMessage; here both ends of a MessageChannel, the replica in a worker thread.
    const startWorker = () => {
      const { port1, port2 } = new MessageChannel();
      const thread = moduleWorker(new URL('./data_parallel_port.test-support.ts', import.meta.url));
      thread.once('message', () => thread.postMessage(port2, [port2]));
      port1.start();
      return {
        postMessage: (message: unknown, transfer: ArrayBuffer[]) => port1.postMessage(message, transfer),
        addEventListener: port1.addEventListener.bind(port1),
        terminate: async () => {
          port1.close();
          await thread.terminate();
        },
      } as unknown as import('../train/data_parallel.js').DataParallelWorker;
    };
    manualSeed(11);
    const single = new SmallModel();
    manualSeed(11);
    const parallel = new SmallModel();
    const gradients = await DataParallelGradients.create<Row[]>({ startWorker, threads: 2, backend: 'cpu' });
    started.push(gradients);
    const one = trainer(single);
    const two = trainer(parallel, gradients);
    for (let step = 0; step < 3; step++) {
      const batch = rows(6, 30 + step);
      const a = await one.trainStep(batch);
      const b = await two.trainStep(batch);
      expect(b.loss).toBeCloseTo(a.loss, 5);
    }
    expectSameParameters(parallel, single);
    one.dispose();
    two.dispose();
  });

  it('says what is wrong when a worker cannot start or has no setup, and outside a worker', async () => {
    await expect(
      DataParallelGradients.create<Row[]>({
        startWorker: () => {
          throw new Error('no workers here');
        },
        threads: 2,
      }),
    ).rejects.toThrow(/starting worker 1 failed: no workers here/);
    // The second fails after the first started: the first is stopped, and its end is no stray rejection.
    const first = nodeDataParallelWorkers(workerModule);
    await expect(
      DataParallelGradients.create<Row[]>({
        startWorker: (rank) => {
          if (rank === 2) throw new Error('only one worker here');
          return first(rank);
        },
        threads: 3,
        backend: 'cpu',
      }),
    ).rejects.toThrow(/starting worker 2 failed: only one worker here/);
    await expect(
      DataParallelGradients.create<Row[]>({
        // A module without the export (it would serve a port it is sent).
        startWorker: nodeDataParallelWorkers(
          new URL('./data_parallel_port.test-support.ts', import.meta.url),
        ),
        threads: 2,
        backend: 'cpu',
      }),
    ).rejects.toThrow(
      /data-parallel worker 1 crashed: worker module .*data_parallel_port.test-support.ts does not export a setup function/,
    );
    expect(() =>
      serveDataParallelReplica(() => ({ module: new SmallModel(), loss: () => tf.scalar(0) })),
    ).toThrow(/not in a Web Worker; pass the port/);
  });
});
