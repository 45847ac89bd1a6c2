// DataParallelGradients' workers in Node: worker threads running a module that exports `setup`
// (its `.ts` source through tsx in tests and scripts), served by core's replica loop on the
// thread's `parentPort`.
import type { Worker } from 'node:worker_threads';
import type { DataParallelWorker } from '../train/data_parallel.js';
import { moduleHref, moduleWorker, siblingModule } from './module_worker.js';

export interface NodeDataParallelWorkerOptions {
  /**
   * Node options for the workers (`execArgv`). Default: the parent's, plus a TypeScript loader
   * (tsx) when the module is a `.ts` source (tests, `tsx` scripts).
   */
  execArgv?: string[];
}

/** A Node worker thread as DataParallelGradients drives one (the events a browser's Worker has). */
function asDataParallelWorker(worker: Worker): DataParallelWorker {
  return {
    postMessage: (message, transfer) => worker.postMessage(message, transfer),
    addEventListener: ((type: 'message' | 'error' | 'exit', listener: (event: object) => void) => {
      if (type === 'message') worker.on('message', (data: unknown) => listener({ data }));
      else if (type === 'error')
        worker.on('error', (error: Error) => listener({ error, message: error.message }));
      else worker.on('exit', (code: number) => listener({ code }));
    }) as DataParallelWorker['addEventListener'],
    terminate: () => worker.terminate(),
  };
}

/**
 * `startWorker` for DataParallelGradients in Node: each replica a worker thread importing
 * `workerModule` (a `file:` URL or a path to an ES module exporting `setup`, a `DataParallelSetup`).
 *
 * ```ts
 * const gradients = await DataParallelGradients.create<Row[]>({
 *   startWorker: nodeDataParallelWorkers(new URL('./replica.js', import.meta.url)),
 *   threads: os.availableParallelism(),
 *   setupOptions: { modelDir },
 * });
 * ```
 */
export function nodeDataParallelWorkers(
  workerModule: string | URL,
  options: NodeDataParallelWorkerOptions = {},
): (rank: number) => DataParallelWorker {
  const entry = siblingModule(import.meta.url, 'data_parallel_replica_worker');
  const workerData = { workerModule: moduleHref(workerModule) };
  return () =>
    asDataParallelWorker(
      moduleWorker(entry, { workerData, ...(options.execArgv ? { execArgv: options.execArgv } : {}) }),
    );
}
