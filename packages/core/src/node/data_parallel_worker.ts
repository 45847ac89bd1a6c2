// A DataParallelGradients worker: its own TensorFlow.js backend and a model replica built by the
// user's module (`setup`), kept equal to the main thread's by the updates each step carries.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/init_backend.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { manualSeed } from '../nn/random.js';
import type { FromWorker, ToWorker, WorkerInit } from './data_parallel_protocol.js';

/** What the worker module's `setup` returns. */
interface Replica {
  module: Module;
  loss: (batch: unknown) => tf.Scalar;
}

if (parentPort === null) throw new Error('data_parallel_worker: not running in a worker thread');
const port = parentPort;
const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
const errorMessage = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function start(init: WorkerInit): Promise<{ replica: Replica; parameters: Map<string, Parameter> }> {
  await initBackend({ backend: init.backend });
  tf.env().set('PROD', true);
  manualSeed(init.seed);
  const imported = (await import(init.workerModule)) as {
    setup?: (options: unknown, info: object) => unknown;
  };
  if (typeof imported.setup !== 'function') {
    throw new Error(`worker module ${init.workerModule} does not export a setup function`);
  }
  const replica = (await imported.setup(init.setupOptions, { rank: init.rank })) as Replica;
  if (
    !replica ||
    typeof replica.loss !== 'function' ||
    typeof replica.module?.namedParameters !== 'function'
  ) {
    throw new Error(`setup() of ${init.workerModule} must return { module, loss }`);
  }
  return { replica, parameters: new Map(replica.module.namedParameters()) };
}

const ready = start(workerData as WorkerInit).then(
  (state) => {
    send({ type: 'ready', parameters: [...state.parameters.keys()] });
    return state;
  },
  (error: unknown) => {
    send({
      type: 'error',
      id: null,
      message: `setup failed: ${errorMessage(error)}`,
      stack: (error as Error)?.stack,
    });
    return null;
  },
);

// Messages are handled one at a time, in order.
let queue: Promise<void> = Promise.resolve();
port.on('message', (message: ToWorker) => {
  queue = queue.then(() => handle(message));
});

async function handle(message: ToWorker): Promise<void> {
  const state = await ready;
  if (state === null) return;
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
    for (const [name, shape, data] of message.updates) {
      const parameter = parameters.get(name);
      if (!parameter) throw new Error(`the replica has no parameter "${name}"`);
      const value = tf.tensor(data, shape, parameter.dtype);
      parameter.assign(value);
      value.dispose();
    }
    const trainable = new Set(message.trainable);
    for (const [name, parameter] of parameters) parameter.requiresGrad = trainable.has(name);
    const variables = message.trainable.map((name) => {
      const parameter = parameters.get(name);
      if (!parameter) throw new Error(`the replica has no parameter "${name}"`);
      return parameter.variable;
    });
    replica.module.train();
    const started = performance.now();
    const { value, grads } = tf.variableGrads(() => replica.loss(message.batch), variables);
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
      { type: 'result', id: message.id, loss, seconds: (performance.now() - started) / 1000, grads: arrays },
      arrays.flatMap((a) => (a === null ? [] : [a.buffer as ArrayBuffer])),
    );
  } catch (error) {
    send({ type: 'error', id: message.id, message: errorMessage(error), stack: (error as Error)?.stack });
  }
}
