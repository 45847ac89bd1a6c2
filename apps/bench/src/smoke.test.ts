// End to end on a tiny random model: 2 steps, 3 techniques, every output written. Timings are
// reported by the bench, never asserted here.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '@peft/core';
import { createModel } from '@peft/models';
import { saveModel } from '@peft/models/node';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend } from './backend.js';
import { runBench } from './bench.js';
import { writeOutputs } from './bench_command.js';
import type { BenchResults } from './results.js';

let dir: string;
let results: BenchResults;
let tensorsBefore: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-bench-smoke-'));
  await startBackend('cpu');
  manualSeed(3);
  const model = createModel({
    model_type: 'gpt2',
    vocab_size: 256,
    n_positions: 64,
    n_embd: 16,
    n_layer: 2,
    n_head: 2,
    bos_token_id: null,
    eos_token_id: null,
    // No dropout (as the built-in model): data-parallel workers draw their own masks.
    attn_pdrop: 0,
    resid_pdrop: 0,
    embd_pdrop: 0,
  });
  await saveModel(model, join(dir, 'model'));
  model.dispose();
  tensorsBefore = tf.memory().numTensors;
  results = await runBench({
    model: join(dir, 'model'),
    builtIn: false,
    // prefix: a technique whose module holds tensors of its own, outside the base model.
    methods: ['full', 'lora', 'prefix'],
    steps: 2,
    batch: 2,
    length: 16,
    seed: 7,
    evalWindows: 2,
    sentimentTest: 4,
    timingRepeats: 1,
    backend: 'cpu',
    peer: false,
    quick: true,
    command: 'smoke test',
    speedRounds: 1,
    threads: 2,
  });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bench smoke run', () => {
  it('measures every technique it was asked for', () => {
    expect(results.techniques.map((t) => t.method)).toEqual(['full', 'lora', 'prefix']);
    const [full, lora] = results.techniques;
    expect(lora!.trainable_params).toBeLessThan(full!.trainable_params);
    expect(lora!.optimizer_bytes).toBeLessThan(full!.optimizer_bytes);
    for (const t of results.techniques) {
      expect(t.losses.sentiment).toHaveLength(2);
      expect(t.losses.sotu).toHaveLength(2);
      expect(t.eval.accuracy).toBeGreaterThanOrEqual(0);
      expect(t.eval.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(t.eval.perplexity)).toBe(true);
      expect(t.peak_bytes).toBeGreaterThan(0);
      expect(t.adapter_bytes).toBeGreaterThan(0);
      console.log(
        `${t.method}: step ${t.step_seconds_median.toFixed(3)} s, mfu ${(100 * t.mfu).toFixed(2)}%`,
      );
    }
    expect(results.machine.backend).toBe('cpu');
    // The peak is sampled at the start, before each of the 3 techniques and at the end; the best counts.
    const samples = results.machine.matmul_gflops_samples!;
    expect(samples).toHaveLength(5);
    expect(results.machine.matmul_gflops).toBe(Math.max(...samples));
  });

  it("runs issue 10's speed checks: interleaved steps, inference, generation, two threads", () => {
    const speed = results.speed!;
    expect(speed.skipped).toEqual({});
    expect(Object.keys(speed.interleaved_step_cpu_seconds)).toEqual(['full', 'lora', 'prefix']);
    expect(speed.inference!.unmerged_seconds).toBeGreaterThan(0);
    expect(speed.generation!.length).toBeGreaterThan(0);
    const parallel = speed.data_parallel!;
    expect(parallel.threads).toBe(2);
    // The same training on one thread and on two (timings are reported, not asserted).
    expect(parallel.max_loss_difference).toBeLessThan(1e-4);
    // Both threads computed a shard in every measured step, and the pairs are all recorded.
    expect(parallel.shard_seconds).toHaveLength(2);
    expect(parallel.shard_seconds.every((s) => s > 0)).toBe(true);
    expect(parallel.threads_seconds_all).toHaveLength(parallel.one_thread_seconds_all.length);
    expect(Math.min(...parallel.threads_seconds_all)).toBe(parallel.threads_seconds);
    expect(parallel.slowest_shard_excess).toBeGreaterThanOrEqual(0);
    // A batch per thread: timed in the same blocks, both threads on a whole batch of their own.
    const weak = parallel.per_thread_batch!;
    expect(weak.seconds_all).toHaveLength(parallel.one_thread_seconds_all.length);
    expect(weak.rows_per_thread).toBe(2);
    expect(weak.shard_seconds).toHaveLength(2);
    expect(weak.shard_seconds.every((s) => s > 0)).toBe(true);
    // Every ceiling was timed after every measured pair.
    for (const ceiling of [
      parallel.ceiling,
      parallel.simd_ceiling,
      parallel.stream_ceiling,
      parallel.matmul_ceiling,
    ]) {
      expect(ceiling!.one_thread_seconds_all).toHaveLength(parallel.one_thread_seconds_all.length);
      expect(ceiling!.threads_seconds_all.every((s) => s > 0)).toBe(true);
    }
  });

  it('leaves no tensor behind (training runs, speed checks, evaluations)', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('writes results.json, report.md and report.html', async () => {
    const paths = await writeOutputs(results, join(dir, 'out'));
    expect(paths.map((p) => p.slice(p.lastIndexOf('/') + 1))).toEqual([
      'results.json',
      'report.md',
      'report.html',
    ]);
    const json = JSON.parse(await readFile(join(dir, 'out', 'results.json'), 'utf8')) as BenchResults;
    expect(json.techniques).toHaveLength(3);
    const html = await readFile(join(dir, 'out', 'report.html'), 'utf8');
    expect(html).toContain('new Chart(');
  });
});
