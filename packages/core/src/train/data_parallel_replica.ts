// A data-parallel replica: the worker side of DataParallelGradients. Its own TensorFlow.js backend
// and a model replica built by the user's `setup`, kept equal to the training thread's by the
// updates each step carries. The same code serves a browser's Web Worker (`self`) and a Node worker
// thread (`parentPort`, which `@peft/core/node` passes).
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/init_backend.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { manualSeed } from '../nn/random.js';
import type { FromReplica, ReplicaInit, ToReplica } from './data_parallel_protocol.js';

/** A worker's model replica and the loss of a shard (a mean over its tokens). */
export interface DataParallelReplica<B> {
  module: Module;
  loss: (batch: B) => tf.Scalar;
}

/**
 * Builds a replica of the module the training thread trains (same parameter names; values need
 * not match: the training thread sends its own before the first batch). It runs after the
 * worker's backend is initialised; `options` are DataParallelGradients' `setupOptions`.
 */
export type DataParallelSetup<B, O = unknown> = (
  options: O,
  info: { rank: number },
) => DataParallelReplica<B> | Promise<DataParallelReplica<B>>;

/** The worker's end of the channel: a Web Worker's global scope, or a Node `MessagePort`. */
export interface ReplicaPort {
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  close(): void;
}

const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error));

function workerScope(): ReplicaPort {
  const scope = globalThis as { WorkerGlobalScope?: abstract new () => unknown };
  if (typeof scope.WorkerGlobalScope !== 'function' || !(globalThis instanceof scope.WorkerGlobalScope)) {
    throw new Error(
      'serveDataParallelReplica: not in a Web Worker; pass the port to serve on (in Node, ' +
        "DataParallelGradients' workers come from nodeDataParallelWorkers(), which serves the module's setup)",
    );
  }
  return globalThis as unknown as ReplicaPort;
}

/**
 * Serves DataParallelGradients' requests with the replica `setup` builds: call it at the top of
 * the worker module that `startWorker` starts (in a browser, `port` is the worker's own scope).
 *
 * ```ts
 * // replica.worker.ts
 * import { serveDataParallelReplica } from '@peft/core';
 * serveDataParallelReplica(async (options, { rank }) => ({ module: peft, loss: (batch) => ... }));
 * ```
 */
export function serveDataParallelReplica<B, O>(
  setup: DataParallelSetup<B, O>,
  port: ReplicaPort = workerScope(),
): void {
  const send = (message: FromReplica, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
  /** An error reply (`id` null: not a request's), with the error's stack where it has one. */
  const sendError = (id: number | null, error: unknown, prefix = '') =>
    send({
      type: 'error',
      id,
      message: `${prefix}${errorMessage(error)}`,
      ...((error as Error)?.stack ? { stack: (error as Error).stack } : {}),
    });
  let ready: Promise<{ replica: DataParallelReplica<B>; parameters: Map<string, Parameter> } | null> | null =
    null;

  async function start(init: ReplicaInit) {
    await initBackend({
      backend: init.backend,
      // One thread per replica: the replicas are the parallelism (and core's GEMM runs single-threaded).
      ...(init.backend === 'wasm' ? { threads: 1 } : {}),
      ...(init.wasmPaths !== undefined ? { wasmPaths: init.wasmPaths } : {}),
    });
    tf.env().set('PROD', true);
    manualSeed(init.seed);
    const replica = await setup(init.setupOptions as O, { rank: init.rank });
    if (
      !replica ||
      typeof replica.loss !== 'function' ||
      typeof replica.module?.namedParameters !== 'function'
    ) {
      throw new Error('setup() must return { module, loss }');
    }
    return { replica, parameters: new Map(replica.module.namedParameters()) };
  }

  // Messages are handled one at a time, in order.
  let queue: Promise<void> = Promise.resolve();
  port.addEventListener('message', (event) => {
    const message = event.data as ToReplica;
    if (message.type === 'init') {
      ready = start(message.init).then(
        (state) => {
          send({ type: 'ready', parameters: [...state.parameters.keys()] });
          return state;
        },
        (error: unknown) => {
          sendError(null, error, 'setup failed: ');
          return null;
        },
      );
      return;
    }
    queue = queue.then(() => handle(message));
  });

  async function handle(message: Exclude<ToReplica, { type: 'init' }>): Promise<void> {
    const state = await ready;
    if (!state) {
      if (message.type !== 'close')
        send({ type: 'error', id: message.id, message: 'the replica has not been set up' });
      return;
    }
    if (message.type === 'close') {
      state.replica.module.dispose();
      port.close();
      return;
    }
    if (message.type === 'stats') {
      const memory = tf.memory();
      send({ type: 'stats', id: message.id, numTensors: memory.numTensors, numBytes: memory.numBytes });
      return;
    }
    try {
      const { parameters, replica } = state;
      const parameterNamed = (name: string) => {
        const parameter = parameters.get(name);
        if (!parameter) throw new Error(`the replica has no parameter "${name}"`);
        return parameter;
      };
      for (const [name, shape, data] of message.updates) {
        const parameter = parameterNamed(name);
        const value = tf.tensor(data, shape, parameter.dtype);
        parameter.assign(value);
        value.dispose();
      }
      const trainable = new Set(message.trainable);
      for (const [name, parameter] of parameters) parameter.requiresGrad = trainable.has(name);
      const variables = message.trainable.map((name) => parameterNamed(name).variable);
      replica.module.train();
      const started = performance.now();
      const { value, grads } = tf.variableGrads(() => replica.loss(message.batch as B), variables);
      const loss = (await value.data())[0]!;
      const arrays = await Promise.all(
        variables.map(async (v) => {
          const g = grads[v.name];
          // A copy: the backend's own array may back other tensors, and this one is transferred.
          return g ? new Float32Array((await g.data()) as Float32Array) : null;
        }),
      );
      tf.dispose([value, ...Object.values(grads)]);
      send(
        {
          type: 'result',
          id: message.id,
          loss,
          seconds: (performance.now() - started) / 1000,
          grads: arrays,
        },
        arrays.flatMap((a) => (a === null ? [] : [a.buffer as ArrayBuffer])),
      );
    } catch (error) {
      sendError(message.id, error);
    }
  }
}
