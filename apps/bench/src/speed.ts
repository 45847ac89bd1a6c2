// Issue 10's speed checks, each side by side in one process so that the machine's load (shared with
// other jobs) hits both sides of a comparison alike: every technique's step interleaved with the
// others', inference with an adapter merged / unmerged / disabled, generation's per-token time along
// the context, and training on several threads (DataParallelGradients) against one.
import { availableParallelism, loadavg } from 'node:os';
import {
  cosineScheduleWithWarmup,
  DataParallelGradients,
  getPeftMethod,
  getPeftModel,
  type Module,
  manualSeed,
  Trainer,
} from '@peft/core';
import { nodeDataParallelWorkers, siblingModule } from '@peft/core/node';
import { type CausalLM, generate } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import type { LabelledRow } from './data.js';
import { maskedLMLoss } from './lm.js';
import { measureMatmulPeak } from './matmul_peak.js';
import { median, medianPerThread, medianRatio, medianSlowestExcess } from './metrics.js';
import { PeerStepper, type PeerStepSpec } from './peer.js';
import type { ReplicaOptions } from './replica.js';
import { timeOnce } from './run_technique.js';
import type { TaskData } from './tasks.js';
import { taskBatches } from './tasks.js';
import { setUpTechnique, type Technique } from './techniques.js';
import { type CeilingPair, type CeilingWork, ThreadCeiling } from './thread_ceiling.js';

export interface SpeedOptions {
  /** Interleaved rounds of steps (after two warm-up steps each). */
  rounds: number;
  batch: number;
  seed: number;
  /** Threads for the data-parallel check (1: skipped). */
  threads: number;
  /** The model folder (the data-parallel workers load it themselves). */
  model: string;
  /** The backend of the data-parallel workers (this thread's). */
  backend: string;
  /** The matmul of the bench's peak, `[m, k, n]`: sampled in every interleaved round. */
  peakShape: [number, number, number];
  /** Hugging Face PEFT's LoRA step, interleaved with LoRA's (`--peer`), or null. */
  peer: { python: string; spec: PeerStepSpec } | null;
  log?: (line: string) => void;
}

// Each check keeps every round of its repeats: the targets compare the two sides round by round (the
// median of their ratios, each round's sides seconds apart under much the same load). The least
// disturbed repeat of each side (the minimum: interference only ever adds time) is kept too.
export interface SpeedResults {
  /** CPU seconds of a step per technique, steps interleaved round-robin: the least disturbed round. */
  interleaved_step_cpu_seconds: Record<string, number>;
  /** Every round's CPU seconds per technique. */
  interleaved_step_cpu_seconds_all: Record<string, number[]>;
  /** The matmul rate (GFLOP/s over 16 back-to-back products, CPU time) in every round, right after LoRA's step. */
  interleaved_matmul_gflops?: number[];
  /** Hugging Face PEFT's LoRA step (CPU seconds) in every round, right after LoRA's (`--peer`). */
  interleaved_peer_lora_cpu_seconds?: number[];
  /** Forward pass of one batch in eval mode, CPU seconds (least disturbed of the interleaved rounds). */
  inference: {
    base_seconds: number;
    unmerged_seconds: number;
    merged_seconds: number;
    /** Every round's CPU seconds. */
    rounds?: { base: number[]; unmerged: number[]; merged: number[] };
  } | null;
  /** CPU ms per generated token by position (KV cache): per bucket, the least disturbed of the runs (one a round) after 2 warm-ups. */
  generation: { positions: [number, number]; milliseconds: number }[] | null;
  /** LoRA steps on one thread and on `threads` (same batches, alternating blocks of two steps, the second timed): wall time is throughput (least disturbed steps). */
  data_parallel: {
    threads: number;
    one_thread_seconds: number;
    threads_seconds: number;
    speedup: number;
    /** CPU time of all threads over one thread's, minus 1: the extra work of splitting. */
    work_overhead: number;
    /** Every measured step pair's wall seconds: one thread, then `threads`. */
    one_thread_seconds_all: number[];
    threads_seconds_all: number[];
    /** The median over step pairs of one thread's step over `threads`' (disturbances included). */
    median_pair_speedup: number;
    /** Median over the steps of each thread's seconds on its shard (this thread first). */
    shard_seconds: number[];
    /** Median over the steps of the share of the step this thread waited for the slowest worker. */
    wait_fraction: number;
    /**
     * Median over the steps of the slowest thread's seconds on its shard over the threads' mean,
     * minus 1: shards of equal work on threads that run at different speeds (a shared machine's
     * vCPUs) end apart, and the step waits for the last.
     */
    slowest_shard_excess?: number;
    /** Largest loss difference between the two runs (the same training, to float rounding). */
    max_loss_difference: number;
    load_average: [number, number];
    /**
     * The machine's own ceiling in the same pairs (thread_ceiling.ts): a register-bound loop on this
     * thread alone, then split over `threads` threads, wall seconds of each pair's sides.
     */
    ceiling?: CeilingPairs;
    /**
     * The same for a register-bound WebAssembly SIMD loop (simd_loop.ts), with relaxed SIMD's
     * multiply-add where core's GEMM has it (`fused`): the SIMD units without memory traffic.
     */
    simd_ceiling?: CeilingPairs & { fused: boolean };
    /**
     * The same for copies of a 6 MiB array (each thread its own): memory-bound work, as a step's
     * element-wise kernels on activations are.
     */
    stream_ceiling?: CeilingPairs;
    /** The same for core's matmul on the peak's shape (each thread its own backend): most of a step. */
    matmul_ceiling?: CeilingPairs & { shape: [number, number, number] };
    /**
     * Weak scaling, as Hugging Face's Trainer and PyTorch's DDP count a batch (per device): each of
     * `threads` threads takes a whole bench batch of its own (`threads` x the rows in all), timed in
     * the same blocks as the two sides above. `median_pair_speedup` is tokens per second against
     * the one-thread side's in the same block: `threads` x its step over this step, median of pairs.
     */
    per_thread_batch?: {
      rows_per_thread: number;
      seconds_all: number[];
      median_pair_speedup: number;
      shard_seconds: number[];
      slowest_shard_excess: number;
    };
  } | null;
  /** Why a check was skipped, by check. */
  skipped: Record<string, string>;
}

/** A ceiling's pairs: wall seconds alone and split, and the median over pairs of their ratio. */
export interface CeilingPairs {
  one_thread_seconds_all: number[];
  threads_seconds_all: number[];
  median_pair_speedup: number;
}

function ceilingPairs(pairs: readonly CeilingPair[]): CeilingPairs {
  const one = pairs.map((p) => p.one);
  const all = pairs.map((p) => p.all);
  return {
    one_thread_seconds_all: one,
    threads_seconds_all: all,
    median_pair_speedup: medianRatio(one, all),
  };
}

function trainerFor(
  setup: Awaited<ReturnType<typeof setUpTechnique>>,
  loss: (rows: LabelledRow[]) => tf.Scalar,
  steps: number,
  seed: number,
  gradients?: DataParallelGradients<LabelledRow[]>,
): Trainer<LabelledRow[]> {
  return new Trainer<LabelledRow[]>({
    module: setup.module,
    loss,
    optimizer: setup.optimizer,
    schedule: cosineScheduleWithWarmup({
      warmupSteps: Math.max(1, Math.round(steps / 10)),
      trainingSteps: steps,
    }),
    maxGradNorm: 1.0,
    seed,
    ...(gradients ? { gradients } : {}),
  });
}

/**
 * A fresh base model wrapped by `technique`, seeded, with its trainer. `module` is what to dispose:
 * the technique's module holds the model and the technique's own tensors (shared projections,
 * prefixes); for full fine-tuning it is the model.
 */
async function techniqueTrainer(
  technique: Technique,
  loadBase: () => Promise<CausalLM>,
  steps: number,
  seed: number,
  gradients?: DataParallelGradients<LabelledRow[]>,
): Promise<{ trainer: Trainer<LabelledRow[]>; module: Module }> {
  const model = await loadBase();
  manualSeed(seed);
  let setup: Awaited<ReturnType<typeof setUpTechnique>>;
  try {
    setup = await setUpTechnique(technique, model, steps);
  } catch (error) {
    model.dispose();
    throw error;
  }
  const loss = (rows: LabelledRow[]) => maskedLMLoss(model, rows);
  return { trainer: trainerFor(setup, loss, steps, seed, gradients), module: setup.module };
}

interface InterleavedRounds {
  steps: Record<string, number[]>;
  matmulGflops: number[];
  peerLora: number[] | null;
  /** Why PEFT's steps are missing when a peer was asked for (the rest of the check still runs). */
  peerError: string | null;
}

/**
 * Every technique's training step, interleaved round-robin: CPU seconds of every round per
 * technique; in each round the matmul rate is measured right after LoRA's step and (with a peer)
 * PEFT's LoRA step runs after that.
 */
async function interleavedSteps(
  techniques: readonly Technique[],
  loadBase: () => Promise<CausalLM>,
  data: TaskData,
  options: SpeedOptions,
): Promise<InterleavedRounds> {
  const steps = 2 + options.rounds;
  const runs: {
    name: string;
    trainer: Trainer<LabelledRow[]>;
    module: Module;
    next: () => LabelledRow[];
  }[] = [];
  let peer: PeerStepper | null = null;
  try {
    for (const technique of techniques) {
      const { trainer, module } = await techniqueTrainer(technique, loadBase, steps, options.seed);
      runs.push({
        name: technique.name,
        trainer,
        module,
        next: taskBatches(data, 'sotu', options.batch, options.seed),
      });
    }
    let peerError: string | null = null;
    if (options.peer && runs.some((r) => r.name === 'lora')) {
      try {
        peer = await PeerStepper.start(options.peer.python, options.peer.spec);
      } catch (error) {
        peerError = firstLine(error);
      }
    }
    const cpu = new Map<string, number[]>(runs.map((r) => [r.name, []]));
    const matmulGflops: number[] = [];
    const peerLora: number[] = [];
    const [m, k, n] = options.peakShape;
    for (let step = 0; step < steps; step++) {
      for (const run of runs) {
        const timed = step >= 2;
        const rows = run.next();
        const timing = await timeOnce(() => run.trainer.trainStep(rows));
        if (timed) cpu.get(run.name)!.push(timing.cpu);
        // Right after LoRA's step (before it, the sample followed full fine-tuning's step and its
        // garbage; the two placements measured alike: 99.1% and 99.0% MFU by rounds).
        if (run.name === 'lora' && timed) {
          matmulGflops.push((await measureMatmulPeak(m, k, n, 16)).sustainedGflops);
        }
        if (run.name === 'lora' && peer && peerError === null) {
          try {
            const peerStep = await peer.step();
            if (timed) peerLora.push(peerStep.cpu_seconds);
          } catch (error) {
            peerError = firstLine(error);
          }
        }
      }
    }
    return {
      steps: Object.fromEntries(cpu),
      matmulGflops,
      peerLora: peer && peerError === null ? peerLora : null,
      peerError,
    };
  } finally {
    peer?.close();
    for (const run of runs) {
      run.trainer.dispose();
      run.module.dispose();
    }
  }
}

type InferenceState = 'base' | 'unmerged' | 'merged';
const INFERENCE_STATES: readonly InferenceState[] = ['base', 'unmerged', 'merged'];

/** The inference check's order in `round`: base, unmerged, merged, rotated left by the round. */
export function inferenceOrder(round: number): InferenceState[] {
  const shift = round % INFERENCE_STATES.length;
  return [...INFERENCE_STATES.slice(shift), ...INFERENCE_STATES.slice(0, shift)];
}

/** LoRA-style adapter (the first layer technique given) unmerged, merged and disabled: forward CPU seconds. */
async function inferenceSpeed(
  loadBase: () => Promise<CausalLM>,
  data: TaskData,
  options: SpeedOptions,
): Promise<SpeedResults['inference']> {
  const model = await loadBase();
  try {
    manualSeed(options.seed);
    const method = getPeftMethod('lora');
    const peft = getPeftModel(
      model,
      method,
      method.config.parse({ r: 8, lora_alpha: 16, peft_type: method.peftType }),
      {
        modelType: model.modelType,
      },
    );
    // A trained-looking adapter (B is zero at initialisation, which would make merging a no-op).
    for (const [name, p] of peft.namedParameters()) {
      if (name.includes('lora_B')) tf.tidy(() => p.assign(tf.randomNormal(p.shape, 0, 0.02, 'float32', 7)));
    }
    peft.eval();
    const rows = taskBatches(data, 'sotu', options.batch, options.seed)();
    const inputIds = rows.map((r) => r.ids.slice(0, -1));
    const forward = async () => {
      const { logits } = model.forward({ inputIds });
      await logits.data();
      logits.dispose();
    };
    await forward();
    const times = { base: [] as number[], unmerged: [] as number[], merged: [] as number[] };
    // Each state gets an untimed pass first: switching (merge allocates new weights) is not timed.
    const timed = async (into: number[]) => {
      await forward();
      into.push((await timeOnce(forward)).cpu);
    };
    let merged = false;
    const enter = (state: InferenceState) => {
      if (merged) peft.unmerge();
      merged = false;
      if (state === 'base') {
        peft.disableAdapters();
        return;
      }
      peft.enableAdapters();
      if (state === 'merged') {
        peft.merge();
        merged = true;
      }
    };
    // Twice the other checks' rounds: a forward pass is short, and the merged one does exactly the
    // base's work, so only the machine's noise separates them. The order rotates each round (whole
    // turns of three), so that no state always runs first, or always right after a merge's weights.
    const rounds = INFERENCE_STATES.length * Math.ceil((2 * options.rounds + 1) / INFERENCE_STATES.length);
    for (let round = 0; round < rounds; round++) {
      for (const state of inferenceOrder(round)) {
        enter(state);
        await timed(times[state]);
      }
    }
    if (merged) peft.unmerge();
    return {
      base_seconds: Math.min(...times.base),
      unmerged_seconds: Math.min(...times.unmerged),
      merged_seconds: Math.min(...times.merged),
      rounds: times,
    };
  } finally {
    model.dispose();
  }
}

/** Greedy generation over the whole context with the KV cache: CPU ms per token by position. */
async function generationSpeed(
  loadBase: () => Promise<CausalLM>,
  runs: number,
  warmups = 2,
): Promise<SpeedResults['generation']> {
  const model = await loadBase();
  try {
    model.eval();
    const context = (model.config.n_positions ?? model.config.max_position_embeddings) as number | undefined;
    const tokens = Math.min(255, (context ?? 256) - 1);
    const perRun: number[][] = [];
    for (let run = 0; run < warmups + runs; run++) {
      const times: number[] = [];
      let last = process.cpuUsage();
      await generate(model, [10], {
        maxNewTokens: tokens,
        eosTokenId: null,
        onToken: () => {
          const cpu = process.cpuUsage(last);
          times.push((cpu.user + cpu.system) / 1000);
          last = process.cpuUsage();
        },
      });
      if (run >= warmups) perRun.push(times); // JIT tiers take a few runs to settle
    }
    const edges: [number, number][] = [];
    for (let start = 1; start < tokens; start += 32) edges.push([start, Math.min(tokens, start + 32)]);
    return edges.map(([a, b]) => ({
      positions: [a, b] as [number, number],
      milliseconds: Math.min(...perRun.map((t) => t.slice(a, b).reduce((x, y) => x + y, 0) / (b - a))),
    }));
  } finally {
    model.dispose();
  }
}

/** The data-parallel check's three sides, and the orders they take turns in. */
const ONE_THREAD = 0;
const SPLIT_BATCH = 1;
const BATCH_PER_THREAD = 2;
const SIDE_ORDERS = [
  [ONE_THREAD, SPLIT_BATCH, BATCH_PER_THREAD],
  [SPLIT_BATCH, BATCH_PER_THREAD, ONE_THREAD],
  [BATCH_PER_THREAD, ONE_THREAD, SPLIT_BATCH],
  [ONE_THREAD, BATCH_PER_THREAD, SPLIT_BATCH],
  [SPLIT_BATCH, ONE_THREAD, BATCH_PER_THREAD],
  [BATCH_PER_THREAD, SPLIT_BATCH, ONE_THREAD],
] as const;

/**
 * LoRA trained on one thread and on `threads` from the same weights and batches, steps interleaved;
 * and on `threads` with a batch per thread (weak scaling).
 */
async function dataParallelSpeed(
  loadBase: () => Promise<CausalLM>,
  lora: Technique,
  data: TaskData,
  options: SpeedOptions,
): Promise<SpeedResults['data_parallel']> {
  // Each side runs its steps in blocks of two, back to back as training does, and only a block's
  // second step is timed: a worker that sat idle through the one-thread side's steps ran its next
  // shard slower (in one run 1.24x the main thread's time, against 1.03x for back-to-back steps).
  // Three times the other checks' rounds of blocks: only the least disturbed step of each side
  // counts, and a two-thread step is disturbed when either core is.
  const pairs = 3 * options.rounds;
  const steps = 2 + 2 * pairs;
  const replica: ReplicaOptions = { model: options.model, technique: lora.name, steps };
  const backend = options.backend === 'cpu' ? 'cpu' : 'wasm';
  const startGradients = () =>
    DataParallelGradients.create<LabelledRow[]>({
      startWorker: nodeDataParallelWorkers(siblingModule(import.meta.url, 'replica')),
      setupOptions: replica,
      threads: options.threads,
      countTokens: (rows) => rows.reduce((n, row) => n + row.mask.reduce((a, b) => a + b, 0), 0),
      seed: options.seed,
      backend,
    });
  // The batch split over the threads (strong scaling), and a batch per thread (weak scaling): each
  // side its own workers, so that neither resends every weight to the other's replicas.
  const gradients = await startGradients();
  let perThreadGradients: DataParallelGradients<LabelledRow[]> | null = null;
  const modules: Module[] = [];
  const trainers: Trainer<LabelledRow[]>[] = [];
  // Each ceiling with its measured pairs, found by the kind of work it times.
  const ceilings: { ceiling: ThreadCeiling; measured: CeilingPair[] }[] = [];
  const ceilingOf = (kind: CeilingWork['kind']) => ceilings.find((c) => c.ceiling.work === kind)!;
  try {
    const works: CeilingWork[] = [
      { kind: 'loop' },
      { kind: 'simd' },
      { kind: 'stream' },
      { kind: 'matmul', shape: options.peakShape, backend },
    ];
    for (const work of works) {
      ceilings.push({ ceiling: await ThreadCeiling.create(options.threads, work), measured: [] });
    }
    perThreadGradients = await startGradients();
    // Indexed by side: ONE_THREAD, SPLIT_BATCH, BATCH_PER_THREAD.
    for (const sideGradients of [undefined, gradients, perThreadGradients]) {
      const { trainer, module } = await techniqueTrainer(lora, loadBase, steps, options.seed, sideGradients);
      modules.push(module);
      trainers.push(trainer);
    }
    const next = taskBatches(data, 'sotu', options.batch, options.seed);
    const nextPerThread = taskBatches(data, 'sotu', options.batch * options.threads, options.seed + 1);
    const load0 = loadavg()[0]!;
    const wall: [number[], number[], number[]] = [[], [], []];
    // CPU time of the two sides that do the same training (the split's extra work).
    const cpu: number[][] = [[], []];
    const shards: number[][] = [];
    const perThreadShards: number[][] = [];
    const waits: number[] = [];
    let maxLossDifference = 0;
    // Block 0 is the warm-up; every block gives the one-thread and the split side the same two
    // batches, and the batch-per-thread side two of its own.
    for (let block = 0; block <= pairs; block++) {
      const batches = [next(), next()];
      const perThreadBatches = [nextPerThread(), nextPerThread()];
      const losses: number[][] = [[], []];
      // The sides take turns in every order: none always follows another's steps.
      const order = SIDE_ORDERS[block % SIDE_ORDERS.length]!;
      const oneFirst = order.indexOf(ONE_THREAD) < order.indexOf(SPLIT_BATCH);
      for (const i of order) {
        const trainer = trainers[i]!;
        for (const [k, rows] of (i === BATCH_PER_THREAD ? perThreadBatches : batches).entries()) {
          let loss = 0;
          const timing = await timeOnce(async () => {
            loss = (await trainer.trainStep(rows)).loss;
          });
          if (i !== BATCH_PER_THREAD) losses[i]!.push(loss);
          if (block === 0 || k === 0) continue;
          wall[i]!.push(timing.wall);
          if (i !== BATCH_PER_THREAD) cpu[i]!.push(timing.cpu);
          if (i === SPLIT_BATCH) {
            const split = gradients.lastStepTimings!;
            shards.push(split.shardSeconds);
            waits.push(split.waitSeconds / timing.wall);
          } else if (i === BATCH_PER_THREAD) {
            perThreadShards.push(perThreadGradients!.lastStepTimings!.shardSeconds);
          }
        }
      }
      for (const [k, loss] of losses[ONE_THREAD]!.entries()) {
        maxLossDifference = Math.max(maxLossDifference, Math.abs(loss - losses[SPLIT_BATCH]![k]!));
      }
      for (const { ceiling, measured } of ceilings) {
        const pair = await ceiling.pair(oneFirst);
        if (block > 0) measured.push(pair);
      }
    }
    const one = Math.min(...wall[ONE_THREAD]);
    const many = Math.min(...wall[SPLIT_BATCH]);
    return {
      threads: options.threads,
      one_thread_seconds: one,
      threads_seconds: many,
      speedup: one / many,
      work_overhead: Math.min(...cpu[SPLIT_BATCH]!) / Math.min(...cpu[ONE_THREAD]!) - 1,
      one_thread_seconds_all: wall[ONE_THREAD],
      threads_seconds_all: wall[SPLIT_BATCH],
      median_pair_speedup: medianRatio(wall[ONE_THREAD], wall[SPLIT_BATCH]),
      shard_seconds: medianPerThread(shards),
      wait_fraction: median(waits),
      max_loss_difference: maxLossDifference,
      load_average: [load0, loadavg()[0]!],
      slowest_shard_excess: medianSlowestExcess(shards),
      ceiling: ceilingPairs(ceilingOf('loop').measured),
      simd_ceiling: {
        ...ceilingPairs(ceilingOf('simd').measured),
        fused: ceilingOf('simd').ceiling.fusedMultiplyAdd === true,
      },
      stream_ceiling: ceilingPairs(ceilingOf('stream').measured),
      matmul_ceiling: { ...ceilingPairs(ceilingOf('matmul').measured), shape: options.peakShape },
      per_thread_batch: {
        rows_per_thread: options.batch,
        seconds_all: wall[BATCH_PER_THREAD],
        median_pair_speedup: medianRatio(
          wall[ONE_THREAD].map((s) => s * options.threads),
          wall[BATCH_PER_THREAD],
        ),
        shard_seconds: medianPerThread(perThreadShards),
        slowest_shard_excess: medianSlowestExcess(perThreadShards),
      },
    };
  } finally {
    for (const { ceiling } of ceilings) await ceiling.dispose();
    for (const trainer of trainers) trainer.dispose();
    for (const module of modules) module.dispose();
    await gradients.dispose();
    await perThreadGradients?.dispose();
  }
}

/** An error's first line: what the report shows of it. */
function firstLine(error: unknown): string {
  return (error as Error).message.split('\n')[0]!;
}

/** Runs the checks; a check that fails is reported as skipped with its error, the others still run. */
export async function runSpeedChecks(
  techniques: readonly Technique[],
  loadBase: () => Promise<CausalLM>,
  data: TaskData,
  options: SpeedOptions,
): Promise<SpeedResults> {
  const log = options.log ?? (() => {});
  const skipped: Record<string, string> = {};
  const attempt = async <T>(name: string, run: () => Promise<T>): Promise<T | null> => {
    try {
      const started = performance.now();
      const tensors = tf.memory().numTensors;
      const result = await run();
      const left = tf.memory().numTensors - tensors;
      log(
        `speed check ${name}: ${((performance.now() - started) / 1000).toFixed(0)} s${left === 0 ? '' : `, ${left} tensors left behind`}`,
      );
      return result;
    } catch (error) {
      skipped[name] = firstLine(error);
      log(`speed check ${name} failed: ${skipped[name]}`);
      return null;
    }
  };
  const interleavedRounds = await attempt('interleaved steps', () =>
    interleavedSteps(techniques, loadBase, data, options),
  );
  const rounds = interleavedRounds?.steps ?? {};
  if (interleavedRounds?.peerError) {
    skipped['PEFT interleaved'] = interleavedRounds.peerError;
    log(`speed check: PEFT's steps left out of the interleaved rounds: ${interleavedRounds.peerError}`);
  }
  const interleaved = Object.fromEntries(
    Object.entries(rounds).map(([name, values]) => [name, Math.min(...values)]),
  );
  const inference = await attempt('inference', () => inferenceSpeed(loadBase, data, options));
  const generation = await attempt('generation', () => generationSpeed(loadBase, options.rounds));
  const lora = techniques.find((t) => t.name === 'lora');
  let dataParallel: SpeedResults['data_parallel'] = null;
  if (!lora) skipped['data parallel'] = 'LoRA is not among the techniques';
  else if (options.threads < 2) skipped['data parallel'] = `one thread (${availableParallelism()} available)`;
  else if (options.backend !== 'wasm' && options.backend !== 'cpu')
    skipped['data parallel'] = `workers run wasm or cpu, not ${options.backend}`;
  else dataParallel = await attempt('data parallel', () => dataParallelSpeed(loadBase, lora, data, options));
  return {
    interleaved_step_cpu_seconds: interleaved,
    interleaved_step_cpu_seconds_all: rounds,
    ...(interleavedRounds?.matmulGflops.length
      ? { interleaved_matmul_gflops: interleavedRounds.matmulGflops }
      : {}),
    ...(interleavedRounds?.peerLora ? { interleaved_peer_lora_cpu_seconds: interleavedRounds.peerLora } : {}),
    inference,
    generation,
    data_parallel: dataParallel,
    skipped,
  };
}
