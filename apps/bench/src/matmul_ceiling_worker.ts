// The worker of ThreadCeiling's matmul work (thread_ceiling.ts): its own backend, the products of
// one shape on request (`count` in, `count` back), 'ready' once the backend runs.
import { parentPort, workerData } from 'node:worker_threads';
import type { BackendName } from '@peft/core';
import { startBackend } from './backend.js';
import { MatmulProducts } from './matmul_peak.js';

const { backend, shape } = workerData as { backend: BackendName; shape: [number, number, number] };
await startBackend(backend);
const products = new MatmulProducts(shape);
parentPort!.on('message', (count: number) => parentPort!.postMessage(products.run(count)));
parentPort!.postMessage('ready');
