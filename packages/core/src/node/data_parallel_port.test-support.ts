// A replica served the way a browser's Web Worker serves one: serveDataParallelReplica on an
// EventTarget port (a MessagePort the test sends first), not through nodeDataParallelWorkers.
import { type MessagePort, parentPort } from 'node:worker_threads';
import { serveDataParallelReplica } from '../train/data_parallel_replica.js';
import { setup } from './data_parallel_workers.test-support.js';

parentPort!.once('message', (port: MessagePort) => {
  serveDataParallelReplica(setup, port as unknown as Parameters<typeof serveDataParallelReplica>[1]);
  port.start();
});
parentPort!.postMessage('listening');
