// Data-parallel training over workers: each extra core gets its own worker, backend and model
// replica (`serveDataParallelReplica`); a batch is split across this thread and the workers, each
// computes its shard's gradients, and this thread averages them (weighted by tokens) for the
// Trainer, whose optimizer then updates this thread's parameters. Changed parameters travel to the
// replicas with the next batch: the adapter's (tiny) every step, everything once at the start.
// Browser-safe: the workers are Web Workers (`startWorker`), or Node worker threads through
// `@peft/core/node`'s `nodeDataParallelWorkers`. In Node, tfjs's threaded WASM is off, and in a
// browser its threads run XNNPACK rather than core's GEMM: replicas use every core with the fast
// kernels either way.

import * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '../nn/parameter.js';
import type { FromReplica, ParameterUpdate, ReplicaInit, ToReplica } from './data_parallel_protocol.js';
import type { GradientContext, GradientResult, GradientSource } from './gradient_source.js';

/**
 * A replica worker as DataParallelGradients drives it: a browser's `Worker` is one as it is (its
 * module calls `serveDataParallelReplica`). `'error'` says the worker failed (a module that did not
 * load, an uncaught error); `'exit'` (Node's worker threads; browsers have none) that it ended.
 */
export interface DataParallelWorker {
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'error', listener: (event: { message?: string; error?: unknown }) => void): void;
  addEventListener(type: 'exit', listener: (event: { code: number }) => void): void;
  terminate(): unknown;
}

export interface DataParallelOptions<B> {
  /**
   * Starts the worker of replica `rank` (1 to threads - 1). In a browser:
   * `() => new Worker(new URL('./replica.worker.js', import.meta.url), { type: 'module' })`, a
   * module that calls `serveDataParallelReplica(setup)`; in Node, `nodeDataParallelWorkers(url)`
   * from `@peft/core/node`. Its loss must be a mean over the shard's tokens (as `countTokens`
   * counts them) for the weighted average to equal the whole batch's mean.
   */
  startWorker: (rank: number) => DataParallelWorker;
  /** Passed to `setup` in every worker (structured-cloneable). */
  setupOptions?: unknown;
  /**
   * Threads in all, this one included (it computes a shard too); 1 means no workers (everything on
   * this thread). `DataParallelGradients.defaultThreads` gives every core whose replica fits.
   */
  threads: number;
  /** Split a batch into at most `parts` non-empty shards; default: an array batch into contiguous runs. */
  split?: (batch: B, parts: number) => B[];
  /** A shard's weight in the average (its loss's denominator); default: its length (rows). */
  countTokens?: (batch: B) => number;
  /** The workers' backend; default 'wasm'. */
  backend?: 'wasm' | 'cpu';
  /** Where the workers load tfjs-backend-wasm's `.wasm` files from (browser bundles; tfjs `setWasmPaths`). */
  wasmPaths?: string | Record<string, string>;
  /** Seeds each worker's generator (`manualSeed(seed + rank)`): dropout masks per shard. Default 0. */
  seed?: number;
}

/** Where the last step's time went, per thread: what balances (or not) the split. */
export interface DataParallelStepTimings {
  /** Seconds each thread spent on its shard: this thread first, then the workers by rank. */
  shardSeconds: number[];
  /** Seconds this thread waited for the workers after finishing its own shard. */
  waitSeconds: number;
}

interface Pending {
  resolve: (message: FromReplica) => void;
  reject: (error: Error) => void;
}

interface WorkerHandle {
  rank: number;
  worker: DataParallelWorker;
  pending: Map<number, Pending>;
  failure: Error | null;
  /** Parameter dataIds this replica holds (by name), to send only what changed. */
  sent: Map<string, object>;
}

/** Contiguous runs of rows, as even as possible (the first ones one longer). */
export function splitRows<T>(batch: readonly T[], parts: number): T[][] {
  const count = Math.min(parts, batch.length);
  const shards: T[][] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const size = Math.floor(batch.length / count) + (i < batch.length % count ? 1 : 0);
    shards.push(batch.slice(start, start + size));
    start += size;
  }
  return shards;
}

function defaultSplit<B>(batch: B, parts: number): B[] {
  if (!Array.isArray(batch)) {
    throw new Error('DataParallelGradients: the batch is not an array; give a split function');
  }
  return splitRows(batch, parts) as B[];
}

function defaultCount<B>(batch: B): number {
  if (!Array.isArray(batch)) {
    throw new Error('DataParallelGradients: the batch is not an array; give a countTokens function');
  }
  return batch.length;
}

function dataIdOf(parameter: Parameter): object {
  return (parameter.variable as unknown as { dataId: object }).dataId;
}

/**
 * Routes a worker's messages to its pending requests and turns its failures (an error message, a
 * crash, an exit) into rejections; resolves once its replica is ready.
 */
function watch(handle: WorkerHandle): Promise<void> {
  const { rank, worker } = handle;
  return new Promise<void>((resolve, reject) => {
    const fail = (error: Error) => {
      handle.failure ??= error;
      reject(handle.failure);
      for (const pending of handle.pending.values()) pending.reject(handle.failure);
      handle.pending.clear();
    };
    worker.addEventListener('message', ({ data }) => {
      const message = data as FromReplica;
      if (message.type === 'ready') {
        resolve();
        return;
      }
      if (message.type === 'error') {
        const error = new Error(`data-parallel worker ${rank} failed: ${message.message}`);
        if (message.id === null || !handle.pending.has(message.id)) {
          fail(error);
          return;
        }
        handle.pending.get(message.id)!.reject(error);
        handle.pending.delete(message.id);
        return;
      }
      const pending = handle.pending.get(message.id);
      if (pending) {
        handle.pending.delete(message.id);
        pending.resolve(message);
      }
    });
    worker.addEventListener('error', (event) => {
      const cause =
        event.error instanceof Error ? event.error.message : (event.message ?? 'an error in the worker');
      fail(new Error(`data-parallel worker ${rank} crashed: ${cause}`));
    });
    worker.addEventListener('exit', ({ code }) => {
      if (code !== 0 || handle.pending.size > 0) {
        fail(new Error(`data-parallel worker ${rank} exited with code ${code}`));
      } else {
        handle.failure ??= new Error(`data-parallel worker ${rank} has exited`);
      }
    });
  });
}

/**
 * A `GradientSource` that splits each micro-batch over this thread and `threads - 1` workers
 * and averages their gradients weighted by tokens: for a loss that is a token mean, the
 * result equals the whole batch's loss and gradients (to float rounding), so training is the same
 * as on one thread, only faster. Deterministic for a given split. Start with `create`, pass as the
 * Trainer's `gradients`, `dispose()` when done (it terminates the workers).
 *
 * ```ts
 * const gradients = await DataParallelGradients.create<Row[]>({
 *   // a module calling serveDataParallelReplica(setup); in Node: nodeDataParallelWorkers(url)
 *   startWorker: () => new Worker(new URL('./replica.worker.js', import.meta.url), { type: 'module' }),
 *   setupOptions: { modelDir },
 *   threads: DataParallelGradients.defaultThreads({ cores: navigator.hardwareConcurrency, modelBytes }),
 *   countTokens: (rows) => rows.length * length,
 * });
 * const trainer = new Trainer({ module: peft, loss, optimizer, gradients });
 * ...
 * await gradients.dispose();
 * ```
 *
 * A worker that fails (its setup or a step throws, or it exits) makes the step reject with an
 * error naming the worker and the cause; the others are left running until `dispose`.
 */
export class DataParallelGradients<B> implements GradientSource<B> {
  readonly threads: number;
  readonly #workers: WorkerHandle[];
  readonly #split: (batch: B, parts: number) => B[];
  readonly #count: (batch: B) => number;
  #nextId = 1;
  #disposed = false;
  #lastStepTimings: DataParallelStepTimings | null = null;

  private constructor(workers: WorkerHandle[], options: DataParallelOptions<B>) {
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.#split = options.split ?? defaultSplit;
    this.#count = options.countTokens ?? defaultCount;
  }

  /**
   * Threads to train on when the user leaves it open: every core (`cores`: Node's
   * `os.availableParallelism()`, a browser's `navigator.hardwareConcurrency`), but no more replicas
   * than fit `memoryBytes` of model copies (default 1 GiB; each replica holds the whole model,
   * `modelBytes`). At least 1.
   */
  static defaultThreads({
    cores,
    modelBytes,
    memoryBytes = 1024 ** 3,
  }: {
    cores: number;
    modelBytes: number;
    memoryBytes?: number;
  }): number {
    const copies = Math.floor(memoryBytes / Math.max(1, modelBytes));
    return Math.max(1, Math.min(Math.floor(cores), 1 + copies));
  }

  /** Starts the workers and waits until each has built its replica. */
  static async create<B>(options: DataParallelOptions<B>): Promise<DataParallelGradients<B>> {
    const threads = options.threads;
    if (!(Number.isInteger(threads) && threads >= 1)) {
      throw new Error(`DataParallelGradients: threads must be a positive integer (got ${threads})`);
    }
    if (typeof options.startWorker !== 'function') {
      throw new Error('DataParallelGradients: startWorker must be a function returning a worker');
    }
    const workers: WorkerHandle[] = [];
    const started: Promise<void>[] = [];
    for (let rank = 1; rank < threads; rank++) {
      let worker: DataParallelWorker;
      try {
        worker = options.startWorker(rank);
        const methods = ['postMessage', 'addEventListener', 'terminate'] as const;
        const missing = methods.filter(
          (name) => typeof (worker as Partial<DataParallelWorker>)?.[name] !== 'function',
        );
        if (missing.length > 0) {
          throw new Error(
            `startWorker returned no worker (it has no ${missing.join(', ')}): return a Worker`,
          );
        }
      } catch (error) {
        await new DataParallelGradients<B>(workers, options).dispose(); // the ones already started
        throw new Error(
          `DataParallelGradients: starting worker ${rank} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      const handle: WorkerHandle = { rank, worker, pending: new Map(), failure: null, sent: new Map() };
      workers.push(handle);
      const ready = watch(handle);
      // Awaited below; a worker stopped because a later one failed to start must not reject unheard.
      ready.catch(() => {});
      started.push(ready);
      const init: ReplicaInit = {
        setupOptions: options.setupOptions,
        backend: options.backend ?? 'wasm',
        ...(options.wasmPaths !== undefined ? { wasmPaths: options.wasmPaths } : {}),
        rank,
        seed: (options.seed ?? 0) + rank,
      };
      worker.postMessage({ type: 'init', init } satisfies ToReplica, []);
    }
    const gradients = new DataParallelGradients<B>(workers, options);
    try {
      await Promise.all(started);
    } catch (error) {
      await gradients.dispose();
      throw error;
    }
    return gradients;
  }

  #request(
    handle: WorkerHandle,
    message: ToReplica & { id: number },
    transfer: ArrayBuffer[] = [],
  ): Promise<FromReplica> {
    if (handle.failure) return Promise.reject(handle.failure);
    return new Promise((resolve, reject) => {
      handle.pending.set(message.id, { resolve, reject });
      handle.worker.postMessage(message, transfer);
    });
  }

  /** Parameters whose value changed since this replica last got them (every one the first time). */
  #updates(
    handle: WorkerHandle,
    context: GradientContext<B>,
  ): { updates: ParameterUpdate[]; transfer: ArrayBuffer[] } {
    const updates: ParameterUpdate[] = [];
    const transfer: ArrayBuffer[] = [];
    for (const [name, parameter] of context.module.namedParameters()) {
      const id = dataIdOf(parameter);
      if (handle.sent.get(name) === id) continue;
      const data = new Float32Array(parameter.value.dataSync() as Float32Array);
      updates.push([name, parameter.shape, data]);
      transfer.push(data.buffer as ArrayBuffer);
      handle.sent.set(name, id);
    }
    return { updates, transfer };
  }

  async compute(batch: B, context: GradientContext<B>): Promise<GradientResult> {
    if (this.#disposed) throw new Error('DataParallelGradients: disposed');
    const shards = this.#split(batch, this.threads);
    if (shards.length === 0) throw new Error('DataParallelGradients: the batch split into no shards');
    const tokens = shards.map((shard) => this.#count(shard));
    const total = tokens.reduce((a, b) => a + b, 0);
    if (!(total > 0)) throw new Error('DataParallelGradients: the batch has no tokens');
    const trainable = context.parameters.map(([name]) => name);
    // Workers first (they run while this thread computes shard 0).
    const remote = shards.slice(1).map((shard, i) => {
      const handle = this.#workers[i]!;
      const { updates, transfer } = this.#updates(handle, context);
      const id = this.#nextId++;
      return this.#request(handle, { type: 'step', id, batch: shard, updates, trainable }, transfer);
    });
    // Shard 0 here, scaled by its weight.
    let local: GradientResult;
    const started = performance.now();
    try {
      const variables = context.parameters.map(([, p]) => p.variable);
      const { value, grads } = tf.variableGrads(() => context.loss(shards[0]!), variables);
      local = { loss: value, grads: variables.map((v) => grads[v.name]) };
    } catch (error) {
      await Promise.allSettled(remote);
      throw error;
    }
    const localDone = performance.now();
    let results: FromReplica[];
    try {
      results = await Promise.all(remote);
    } catch (error) {
      tf.dispose([local.loss, ...local.grads.filter((g): g is tf.Tensor => g !== undefined)]);
      await Promise.allSettled(remote);
      throw error;
    }
    this.#lastStepTimings = {
      shardSeconds: [
        (localDone - started) / 1000,
        ...results.map((message) => (message.type === 'result' ? message.seconds : Number.NaN)),
      ],
      waitSeconds: (performance.now() - localDone) / 1000,
    };
    return tf.tidy(() => {
      const weight0 = tokens[0]! / total;
      let loss = tf.mul(local.loss, weight0) as tf.Scalar;
      const grads = local.grads.map((g) => (g ? tf.mul(g, weight0) : undefined));
      results.forEach((message, i) => {
        if (message.type !== 'result')
          throw new Error(`data-parallel worker ${i + 1}: unexpected ${message.type}`);
        const weight = tokens[i + 1]! / total;
        loss = tf.add(loss, tf.scalar(message.loss * weight)) as tf.Scalar;
        message.grads.forEach((data, p) => {
          if (data === null) return;
          const shape = context.parameters[p]![1].shape;
          const scaled = tf.mul(tf.tensor(data, shape), weight);
          grads[p] = grads[p] ? tf.add(grads[p]!, scaled) : scaled;
        });
      });
      tf.dispose([local.loss, ...local.grads.filter((g): g is tf.Tensor => g !== undefined)]);
      return { loss, grads };
    });
  }

  /** Where the last completed step's time went (null before the first step). */
  get lastStepTimings(): DataParallelStepTimings | null {
    return this.#lastStepTimings;
  }

  /** Live tensors and bytes in each worker (tests: leaks). */
  async workerMemory(): Promise<{ rank: number; numTensors: number; numBytes: number }[]> {
    return Promise.all(
      this.#workers.map(async (handle) => {
        const message = await this.#request(handle, { type: 'stats', id: this.#nextId++ });
        if (message.type !== 'stats')
          throw new Error(`data-parallel worker ${handle.rank}: unexpected ${message.type}`);
        return { rank: handle.rank, numTensors: message.numTensors, numBytes: message.numBytes };
      }),
    );
  }

  /** Stops the workers (their replicas are freed); idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await Promise.all(
      this.#workers.map(async (handle) => {
        handle.failure ??= new Error(`data-parallel worker ${handle.rank} was disposed`);
        for (const pending of handle.pending.values()) pending.reject(handle.failure);
        handle.pending.clear();
        await handle.worker.terminate();
      }),
    );
  }
}
