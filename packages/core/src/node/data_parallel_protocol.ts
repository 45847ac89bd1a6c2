// Messages between DataParallelGradients (main thread) and its workers (data_parallel_worker.ts).

/** A parameter's new value: name, shape, data (its buffer is transferred). */
export type ParameterUpdate = [name: string, shape: number[], data: Float32Array];

export interface WorkerInit {
  /** URL of the user's module exporting `setup`. */
  workerModule: string;
  setupOptions: unknown;
  backend: 'wasm' | 'cpu';
  rank: number;
  seed: number;
}

export type ToWorker =
  | {
      type: 'step';
      id: number;
      batch: unknown;
      /** Values that changed since the last message (all of them the first time). */
      updates: ParameterUpdate[];
      /** Names of the parameters that train (flags are synchronised to these). */
      trainable: string[];
    }
  | { type: 'stats'; id: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; parameters: string[] }
  | {
      type: 'result';
      id: number;
      loss: number;
      /** Seconds the worker spent on its shard (forward, backward, reading the gradients). */
      seconds: number;
      /** In the order of `trainable`, null where the loss does not depend on a parameter. */
      grads: (Float32Array | null)[];
    }
  | { type: 'stats'; id: number; numTensors: number; numBytes: number }
  | { type: 'error'; id: number | null; message: string; stack?: string };
