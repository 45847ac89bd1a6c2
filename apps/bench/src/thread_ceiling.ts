// The machine's own ceiling for several busy threads, measured beside the data-parallel check: some
// work on this thread alone, then split over this thread and worker threads. On a shared virtual
// machine two busy vCPUs can each run slower than one does alone; whatever the work loses there,
// training on those threads cannot gain back. Three kinds of work:
// - 'loop': a register-bound loop (a dot product over an L1-resident array: no memory traffic, no
//   tfjs, no messages but one per run): what the cores themselves give;
// - 'simd': a register-bound WebAssembly SIMD loop (simd_loop.ts: multiply-add chains on locals,
//   as busy as the GEMM's micro-kernel, no memory traffic): what the cores give to SIMD work;
// - 'stream': copies of a 6 MiB array into another (each thread its own): memory-bound work, past
//   each core's L2 and through the last-level cache and memory that the cores (and, on a virtual
//   machine, other machines) share, as a step's element-wise kernels on activations are;
// - 'matmul': core's GEMM on one shape (each thread its own backend and operands): the kernel that
//   does most of a training step, with its traffic through the caches shared with other machines.

import { Worker } from 'node:worker_threads';
import { moduleWorker, siblingModule } from '@peft/core/node';
import { MatmulProducts } from './matmul_peak.js';
import { instantiateSimdLoop, simdLoopForEngine } from './simd_loop.js';

const LENGTH = 4096;

/** The loop, as source: `units` passes of a dot product; returns the sum (so that it is not elided). */
const LOOP = `
function dotPasses(units) {
  const a = new Float32Array(${LENGTH}).fill(1.0001);
  const b = new Float32Array(${LENGTH}).fill(0.9999);
  let sum = 0;
  for (let u = 0; u < units; u++) for (let i = 0; i < ${LENGTH}; i++) sum += a[i] * b[i];
  return sum;
}`;

const LOOP_WORKER = `${LOOP}
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (units) => parentPort.postMessage(dotPasses(units)));
parentPort.postMessage('ready');
`;

const dotPasses = new Function(`${LOOP}; return dotPasses;`)() as (units: number) => number;

/** Floats in each of the stream's two arrays (6 MiB: an activation tensor of a step, past an L2). */
const STREAM_FLOATS = (6 << 20) / 4;

/** The stream, as source: its arrays made once, then `units` copies; returns the units copied. */
const STREAM = `
const streamFrom = new Float32Array(${STREAM_FLOATS}).fill(1);
const streamTo = new Float32Array(${STREAM_FLOATS});
function copyPasses(units) {
  for (let u = 0; u < units; u++) streamTo.set(streamFrom);
  return units;
}`;

const STREAM_WORKER = `${STREAM}
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (units) => parentPort.postMessage(copyPasses(units)));
parentPort.postMessage('ready');
`;

/** The SIMD loop's worker: the module's bytes come as workerData. */
const SIMD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const memory = new WebAssembly.Memory({ initial: 1 });
const run = new WebAssembly.Instance(new WebAssembly.Module(workerData), { env: { memory } }).exports.run;
parentPort.on('message', (units) => parentPort.postMessage(run(units)));
parentPort.postMessage('ready');
`;

/** What a ceiling splits: the loop, or products of `shape` on `backend` (this thread's, and the workers'). */
export type CeilingWork =
  | { kind: 'loop' }
  | { kind: 'simd' }
  | { kind: 'stream' }
  | { kind: 'matmul'; shape: [number, number, number]; backend: 'wasm' | 'cpu' };

/** Wall seconds of one run on this thread alone and of the same work split over every thread. */
export interface CeilingPair {
  one: number;
  all: number;
}

/** The work on this thread, a worker doing the same, and the units that warm both up. */
interface Runner {
  alone: (units: number) => number;
  startWorker: () => Worker;
  warmUnits: number;
  dispose: () => void;
  /** The SIMD loop's: whether it multiply-adds with relaxed SIMD (as core's GEMM does here). */
  fusedMultiplyAdd?: boolean;
}

function runnerFor(work: CeilingWork): Runner {
  if (work.kind === 'loop') {
    return {
      alone: dotPasses,
      startWorker: () => new Worker(LOOP_WORKER, { eval: true }),
      warmUnits: 2000,
      dispose: () => {},
    };
  }
  if (work.kind === 'simd') {
    const { bytes, fused } = simdLoopForEngine();
    return {
      fusedMultiplyAdd: fused,
      alone: instantiateSimdLoop(bytes),
      startWorker: () => new Worker(SIMD_WORKER, { eval: true, workerData: bytes }),
      // Long enough in V8's baseline tier for its optimising one to take over (wasm has no OSR).
      warmUnits: 4_000_000,
      dispose: () => {},
    };
  }
  if (work.kind === 'stream') {
    return {
      alone: new Function(`${STREAM}; return copyPasses;`)() as (units: number) => number,
      startWorker: () => new Worker(STREAM_WORKER, { eval: true }),
      warmUnits: 100,
      dispose: () => {},
    };
  }
  const products = new MatmulProducts(work.shape);
  return {
    alone: (units) => products.run(units),
    startWorker: () =>
      moduleWorker(siblingModule(import.meta.url, 'matmul_ceiling_worker'), {
        workerData: { backend: work.backend, shape: work.shape },
      }),
    warmUnits: 4,
    dispose: () => products.dispose(),
  };
}

/** The worker's first message ('ready'), or its error. */
function ready(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) =>
      reject(new Error(`ThreadCeiling: a worker failed to start: ${error.message}`));
    worker.once('message', () => {
      worker.off('error', fail);
      resolve();
    });
    worker.once('error', fail);
  });
}

export class ThreadCeiling {
  readonly threads: number;
  readonly work: CeilingWork['kind'];
  /** For the SIMD loop, whether it runs relaxed SIMD's multiply-add; null for the other work. */
  readonly fusedMultiplyAdd: boolean | null;
  /** Units of one run (sized to about `seconds` on one thread when created). */
  readonly units: number;
  readonly #workers: Worker[];
  readonly #runner: Runner;

  private constructor(workers: Worker[], runner: Runner, work: CeilingWork['kind'], units: number) {
    this.#workers = workers;
    this.#runner = runner;
    this.threads = workers.length + 1;
    this.work = work;
    this.fusedMultiplyAdd = runner.fusedMultiplyAdd ?? null;
    this.units = units;
  }

  /** Starts `threads - 1` workers, warms the work up everywhere and sizes a run to ~`seconds`. */
  static async create(
    threads: number,
    work: CeilingWork = { kind: 'loop' },
    seconds = 0.4,
  ): Promise<ThreadCeiling> {
    if (!Number.isInteger(threads) || threads < 2)
      throw new Error(`ThreadCeiling: threads must be >= 2, got ${threads}`);
    const runner = runnerFor(work);
    const workers = Array.from({ length: threads - 1 }, () => runner.startWorker());
    try {
      await Promise.all(workers.map(ready));
      const warming = new ThreadCeiling(workers, runner, work.kind, 1);
      // JIT tiers (and the kernels' first calls) settle over the first runs, on every thread.
      for (let i = 0; i < 3; i++) await warming.split(runner.warmUnits);
      const start = performance.now();
      runner.alone(runner.warmUnits);
      const perUnit = (performance.now() - start) / 1000 / runner.warmUnits;
      const units = Math.max(threads, Math.round(seconds / perUnit / threads) * threads);
      return new ThreadCeiling(workers, runner, work.kind, units);
    } catch (error) {
      runner.dispose();
      await Promise.all(workers.map((w) => w.terminate()));
      throw error;
    }
  }

  /** `units` split evenly over every thread; resolves to the sum of every thread's result. */
  async split(units: number): Promise<number> {
    const share = Math.round(units / this.threads);
    const others = this.#workers.map(
      (worker) =>
        new Promise<number>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.postMessage(share);
        }),
    );
    const mine = this.#runner.alone(units - share * this.#workers.length);
    const theirs = await Promise.all(others);
    for (const worker of this.#workers) worker.removeAllListeners('error');
    return theirs.reduce((a, b) => a + b, mine);
  }

  /** The work on this thread alone. */
  alone(units: number): number {
    return this.#runner.alone(units);
  }

  /**
   * One pair as the data-parallel check times its steps: each side twice back to back, the second
   * timed (a worker idle through the one-thread side starts slower); `oneFirst` false runs the
   * threads' side first (the check alternates, so that neither side always follows the other).
   */
  async pair(oneFirst = true): Promise<CeilingPair> {
    const timeTwice = async (run: () => unknown): Promise<number> => {
      let seconds = 0;
      for (let k = 0; k < 2; k++) {
        const start = performance.now();
        await run();
        seconds = (performance.now() - start) / 1000;
      }
      return seconds;
    };
    const sides = [
      () => timeTwice(() => this.alone(this.units)),
      () => timeTwice(() => this.split(this.units)),
    ];
    if (!oneFirst) sides.reverse();
    const first = await sides[0]!();
    const second = await sides[1]!();
    return oneFirst ? { one: first, all: second } : { one: second, all: first };
  }

  async dispose(): Promise<void> {
    this.#runner.dispose();
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
