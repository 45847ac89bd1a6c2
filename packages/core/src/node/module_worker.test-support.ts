// The worker module of module_worker.test.ts: TypeScript importing TypeScript (through tsx), and a
// workspace package by name (through the peft-source condition); it answers with what it got.
import { parentPort, workerData } from 'node:worker_threads';
import { splitRows } from '@peft/core';

const rows: number[] = (workerData as { rows: number[] }).rows;
parentPort!.postMessage({ shards: splitRows(rows, 2) });
