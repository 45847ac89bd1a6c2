// The machine's own ceiling for several busy threads, measured beside the data-parallel check: a
// register-bound loop (a dot product over an L1-resident array: no memory traffic, no tfjs, no
// messages but one per run) on this thread alone, then split over this thread and worker threads.
// On a shared virtual machine two busy vCPUs can each run slower than one does alone; whatever the
// loop loses there, training on those threads cannot gain back.
import { Worker } from 'node:worker_threads';

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

const WORKER = `${LOOP}
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (units) => parentPort.postMessage(dotPasses(units)));
`;

const dotPasses = new Function(`${LOOP}; return dotPasses;`)() as (units: number) => number;

/** Wall seconds of one run on this thread alone and of the same work split over every thread. */
export interface CeilingPair {
  one: number;
  all: number;
}

export class ThreadCeiling {
  readonly threads: number;
  /** Passes of one run (sized to about `seconds` on one thread when created). */
  readonly units: number;
  readonly #workers: Worker[];

  private constructor(workers: Worker[], units: number) {
    this.#workers = workers;
    this.threads = workers.length + 1;
    this.units = units;
  }

  /** Starts `threads - 1` workers, warms the loop up everywhere and sizes a run to ~`seconds`. */
  static async create(threads: number, seconds = 0.4): Promise<ThreadCeiling> {
    if (!Number.isInteger(threads) || threads < 2)
      throw new Error(`ThreadCeiling: threads must be >= 2, got ${threads}`);
    const workers = Array.from({ length: threads - 1 }, () => new Worker(WORKER, { eval: true }));
    const ceiling = new ThreadCeiling(workers, 1);
    try {
      // JIT tiers settle over the first runs, on every thread.
      for (let i = 0; i < 3; i++) await ceiling.split(2000);
      const start = performance.now();
      dotPasses(2000);
      const perUnit = (performance.now() - start) / 1000 / 2000;
      const units = Math.max(threads, Math.round(seconds / perUnit / threads) * threads);
      return new ThreadCeiling(workers, units);
    } catch (error) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw error;
    }
  }

  /** `units` passes split evenly over every thread; resolves to the sum of every thread's result. */
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
    const mine = dotPasses(units - share * this.#workers.length);
    const theirs = await Promise.all(others);
    for (const worker of this.#workers) worker.removeAllListeners('error');
    return theirs.reduce((a, b) => a + b, mine);
  }

  /** The loop on this thread alone. */
  alone(units: number): number {
    return dotPasses(units);
  }

  /**
   * One pair as the data-parallel check times its steps: each side twice back to back, the second
   * timed (a worker idle through the one-thread side starts slower).
   */
  async pair(): Promise<CeilingPair> {
    let one = 0;
    let all = 0;
    for (let k = 0; k < 2; k++) {
      const start = performance.now();
      this.alone(this.units);
      one = (performance.now() - start) / 1000;
    }
    for (let k = 0; k < 2; k++) {
      const start = performance.now();
      await this.split(this.units);
      all = (performance.now() - start) / 1000;
    }
    return { one, all };
  }

  async dispose(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
