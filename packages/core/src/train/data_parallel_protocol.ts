// Messages between DataParallelGradients (the training thread) and its replica workers
// (`serveDataParallelReplica`), the same in Node's worker threads and in browsers' Web Workers.

/** A parameter's new value: name, shape, data (its buffer is transferred). */
export type ParameterUpdate = [name: string, shape: number[], data: Float32Array];

/** What a replica is told first: how to start, and what its `setup` gets. */
export interface ReplicaInit {
  setupOptions: unknown;
  backend: 'wasm' | 'cpu';
  /** Where the tfjs-backend-wasm `.wasm` files are served from (browser bundles). */
  wasmPaths?: string | Record<string, string>;
  rank: number;
  seed: number;
}

export type ToReplica =
  | { type: 'init'; init: ReplicaInit }
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

export type FromReplica =
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
