// The entry of nodeDataParallelWorkers' threads: imports the user's module and serves its `setup`
// on this thread's port (core's replica loop, the one browsers' Web Workers run).
import { parentPort, workerData } from 'node:worker_threads';
import { type DataParallelSetup, serveDataParallelReplica } from '../train/data_parallel_replica.js';

if (parentPort === null) throw new Error('data_parallel_replica_worker: not running in a worker thread');
const port = parentPort;
const { workerModule } = workerData as { workerModule: string };
// The port queues what arrives during the import: it starts delivering when the loop listens.
const imported = (await import(workerModule)) as { setup?: DataParallelSetup<unknown, unknown> };
if (typeof imported.setup !== 'function') {
  throw new Error(`worker module ${workerModule} does not export a setup function`);
}
serveDataParallelReplica(imported.setup, {
  postMessage: (message, transfer) => port.postMessage(message, transfer),
  addEventListener: (_type, listener) => port.on('message', (data: unknown) => listener({ data })),
  close: () => port.close(),
});
