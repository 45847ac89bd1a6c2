// The bench: every technique and a full fine-tuning baseline on the same model, data, steps, batch
// and seed, on this machine; memory, speed and task scores per technique.
import { existsSync } from 'node:fs';
import { cpus, loadavg, platform, release } from 'node:os';
import { join } from 'node:path';
import type { BackendName } from '@peft/core';
import type { CausalLM } from '@peft/models';
import { loadModel, loadTokenizer } from '@peft/models/node';
import * as tf from '@tensorflow/tfjs-core';
import { startBackend } from './backend.js';
import { type Encode, encodeBytes } from './data.js';
import { bestPeak, measureMatmulPeak } from './matmul_peak.js';
import { modelFlopsUtilisation, tokensPerSecond } from './metrics.js';
import { findPeerPython, type PeerOutput, runPeer } from './peer.js';
import { describeBackend } from './report.js';
import type { BenchResults, MachineInfo, TechniqueResult } from './results.js';
import { runTechnique, type TaskRun } from './run_technique.js';
import { runSpeedChecks, type SpeedResults } from './speed.js';
import { evaluate, prepareTaskData, sentimentReference, TASKS, type TaskName } from './tasks.js';
import { loadTechniques, type Technique } from './techniques.js';

export interface BenchOptions {
  /** A Hugging Face model folder (GPT-2 or LLaMA family). */
  model: string;
  builtIn: boolean;
  methods: string[];
  steps: number;
  batch: number;
  length: number;
  seed: number;
  evalWindows: number;
  sentimentTest: number;
  timingRepeats: number;
  backend?: BackendName;
  peer: boolean;
  quick: boolean;
  command: string;
  /** Learning rates replacing the techniques' defaults, by technique name. */
  lr?: Record<string, number>;
  /** Interleaved rounds of issue 10's speed checks (0: no speed checks). */
  speedRounds: number;
  /** Threads of the data-parallel check (1: skipped). */
  threads: number;
}

export interface BenchHooks {
  log?: (line: string) => void;
  /** A progress reporter per run (technique x task). */
  progress?: (
    label: string,
    total: number,
  ) => { update(step: number, fields: Record<string, number | string>): void; stop(): void };
}

/** A tokenizer for the folder: its tokenizer.json, or bytes for a 256-token vocabulary. */
async function encoderFor(dir: string, vocab: number): Promise<Encode> {
  if (existsSync(join(dir, 'tokenizer.json'))) {
    const tokenizer = await loadTokenizer(dir);
    return (text) => tokenizer.encode(text, { addSpecialTokens: false });
  }
  if (vocab === 256) return encodeBytes;
  throw new Error(`${dir}: no tokenizer.json, and the vocabulary (${vocab}) is not bytes (256)`);
}

function modelWidth(model: CausalLM): number {
  return model.attentionInfo.numHeads * model.attentionInfo.headDim;
}

export async function runBench(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchResults> {
  const log = hooks.log ?? (() => {});
  const started = performance.now();
  const loadStart = loadavg()[0]!;
  const report = await startBackend(options.backend);
  log(`backend ${describeBackend({ ...report, relaxed_simd: report.relaxedSimd })}`);

  const loaded = await loadTechniques(options.methods);
  const { missing } = loaded;
  const available = loaded.available.map((t) =>
    options.lr?.[t.name] ? { ...t, lr: options.lr[t.name]! } : t,
  );
  for (const m of missing) log(`skipping ${m.name}: ${m.reason}`);
  if (available.length === 0) throw new Error('no technique can run');

  const loadBase = () => loadModel(options.model);
  const probe = await loadBase();
  const vocab = probe.config.vocab_size as number;
  const positions = (probe.config.n_positions ?? probe.config.max_position_embeddings) as number | undefined;
  const prefixTokens = available.some((t) => t.name === 'prefix') ? 20 : 0;
  if (positions !== undefined && options.length + prefixTokens > positions) {
    throw new Error(
      `the model has ${positions} positions; the bench needs ${options.length}${prefixTokens ? ` + ${prefixTokens} prefix` : ''}`,
    );
  }
  const modelInfo = {
    path: options.model,
    model_type: probe.modelType,
    params: [...probe.namedParameters()].reduce((n, [, p]) => n + p.size, 0),
    built_in: options.builtIn,
  };
  const width = modelWidth(probe);
  const encode = await encoderFor(options.model, vocab);
  const data = prepareTaskData({
    encode,
    length: options.length,
    seed: options.seed,
    evalWindows: options.evalWindows,
    sentimentTest: options.sentimentTest,
  });
  log(
    `data: ${data.sentimentTrain.length} sentiment training sentences, ${data.sentimentTest.length} scored; ` +
      `${data.sotuTrain.length.toLocaleString('en-US')} SOTU training tokens; ${data.sotuHeldOut.length} + ${data.mobyHeldOut.length} held-out windows`,
  );

  // The peak is sampled at the start, before every technique's runs and at the end, and the least
  // disturbed sample kept: on a shared machine one sample can be 15% low, which would inflate MFU.
  const peakSamples: number[] = [];
  const samplePeak = async () => {
    const sample = await measureMatmulPeak(options.batch * options.length, width, 3 * width);
    peakSamples.push(sample.gflops);
    return sample;
  };
  let peakSoFar = await samplePeak();
  log(`matmul peak: ${peakSoFar.gflops.toFixed(1)} GFLOP/s on [${peakSoFar.shape.join('x')}]`);

  probe.eval();
  const baseEval = evaluate(probe, data, TASKS, options.batch);
  probe.dispose();
  const baseline = {
    accuracy: baseEval.accuracy!,
    accuracy_interval: baseEval.accuracyInterval!,
    perplexity: baseEval.perplexity!,
    moby_perplexity: baseEval.mobyPerplexity,
  };
  log(
    `base model: sentiment accuracy ${(100 * baseline.accuracy).toFixed(1)}%, SOTU perplexity ${baseline.perplexity.toFixed(3)}, Moby-Dick perplexity ${baseline.moby_perplexity.toFixed(3)}`,
  );
  const reference = sentimentReference(data, options.steps, options.batch);
  log(
    `sentiment reference: word naive Bayes on the same ${reference.training_sentences} training sentences ${(100 * reference.word_naive_bayes_accuracy).toFixed(1)}%, majority class ${(100 * reference.majority_class_accuracy).toFixed(1)}%`,
  );

  // The speed checks run first, in the process as it starts: after the training runs the wasm heap
  // has grown to the largest step's peak and the JS heap is fuller, and timings were noisier there.
  // Found once: the speed checks interleave PEFT's LoRA step with ours, the peer run times them all.
  const peerPython = options.peer ? await findPeerPython() : null;
  const lora = available.find((t) => t.name === 'lora');
  let speed: SpeedResults | undefined;
  if (options.speedRounds > 0) {
    log(
      `speed checks (issue 10): ${options.speedRounds} interleaved rounds, data parallel on ${options.threads} threads`,
    );
    speed = await runSpeedChecks(available, loadBase, data, {
      rounds: options.speedRounds,
      batch: options.batch,
      seed: options.seed,
      threads: options.threads,
      model: options.model,
      backend: report.backend,
      peakShape: peakSoFar.shape,
      peer:
        peerPython && 'python' in peerPython && lora
          ? {
              python: peerPython.python,
              spec: {
                model: options.model,
                batch: options.batch,
                length: options.length,
                threads: Math.max(1, report.threads),
                seed: options.seed,
                technique: lora,
                benchSteps: options.steps,
              },
            }
          : null,
      log,
    });
  }

  const runs = new Map<string, Partial<Record<TaskName, TaskRun>>>();
  for (const technique of available) {
    peakSoFar = bestPeak(peakSoFar, await samplePeak());
    const perTask: Partial<Record<TaskName, TaskRun>> = {};
    for (const task of TASKS) {
      const bar = hooks.progress?.(`${technique.name} ${task}`, options.steps);
      const run = await runTechnique(technique, task, loadBase, data, {
        steps: options.steps,
        batch: options.batch,
        seed: options.seed,
        timingRepeats: options.timingRepeats,
        measure: task === 'sotu',
        onStep: (step, loss) => bar?.update(step, { loss }),
      });
      bar?.stop();
      perTask[task] = run;
    }
    runs.set(technique.name, perTask);
    const tensors = tf.memory().numTensors;
    log(`${technique.name}: done (${tensors} live tensors)`);
  }

  let peerOutput: PeerOutput | null = null;
  let peerInfo: BenchResults['peer'] = null;
  if (peerPython) {
    const found = peerPython;
    if ('error' in found) {
      peerInfo = { error: found.error };
      log(`--peer: ${found.error}`);
    } else {
      log(`--peer: timing the same steps in Hugging Face PEFT with ${found.python}`);
      const peerStart = performance.now();
      try {
        peerOutput = await runPeer(found.python, {
          model: options.model,
          batch: options.batch,
          length: options.length,
          threads: Math.max(1, report.threads),
          steps: Math.max(3, Math.min(10, options.steps)),
          warmup: 2,
          seed: options.seed,
          techniques: available,
          benchSteps: options.steps,
        });
        peerInfo = {
          python: found.python,
          threads: peerOutput.threads,
          torch: peerOutput.torch,
          peft: peerOutput.peft,
        };
        for (const [name, entry] of Object.entries(peerOutput.methods)) {
          if ('error' in entry) log(`--peer: ${name} failed in PEFT: ${entry.error}`);
        }
        log(`--peer: done in ${((performance.now() - peerStart) / 1000).toFixed(0)} s`);
      } catch (error) {
        peerInfo = { error: (error as Error).message.split('\n')[0]! };
        log(`--peer failed: ${peerInfo.error}`);
      }
    }
  }

  const peak = bestPeak(peakSoFar, await samplePeak());
  log(`matmul peak: ${peak.gflops.toFixed(1)} GFLOP/s (the best of the samples along the run)`);
  const techniques = available.map((technique) =>
    techniqueResult(technique, runs.get(technique.name)!, options, peak.gflops * 1e9, baseline, peerOutput),
  );
  const machine: MachineInfo = {
    backend: report.backend,
    threads: report.threads,
    simd: report.simd,
    relaxed_simd: report.relaxedSimd,
    matmul_gflops: peak.gflops,
    matmul_gflops_samples: peakSamples,
    matmul_shape: peak.shape,
    node: process.version,
    platform: `${platform()} ${release()}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    tfjs: tf.version_core,
    load_average: [loadStart, loadavg()[0]!],
  };
  return {
    schema: 1,
    created: new Date().toISOString(),
    wall_seconds: (performance.now() - started) / 1000,
    command: options.command,
    options: {
      quick: options.quick,
      steps: options.steps,
      batch: options.batch,
      length: options.length,
      seed: options.seed,
      eval_windows: options.evalWindows,
      sentiment_test: data.sentimentTest.length,
      timing_repeats: options.timingRepeats,
      methods: available.map((t) => t.name),
    },
    model: modelInfo,
    machine,
    baseline,
    sentiment_reference: reference,
    techniques,
    skipped: missing,
    peer: peerInfo,
    ...(speed ? { speed } : {}),
  };
}

function techniqueResult(
  technique: Technique,
  runs: Partial<Record<TaskName, TaskRun>>,
  options: BenchOptions,
  peakFlops: number,
  baseline: BenchResults['baseline'],
  peer: PeerOutput | null,
): TechniqueResult {
  const sentiment = runs.sentiment!;
  const sotu = runs.sotu!;
  const speed = sotu.speed!;
  const tokens = options.batch * options.length;
  const step = speed.stepSecondsMedian;
  const cpu = speed.stepCpuSecondsMedian;
  const timeSplit =
    speed.forwardCpuSeconds !== null && speed.forwardBackwardCpuSeconds !== null
      ? {
          forward_seconds: speed.forwardCpuSeconds,
          backward_seconds: Math.max(0, speed.forwardBackwardCpuSeconds - speed.forwardCpuSeconds),
          optimizer_seconds: Math.max(0, cpu - speed.forwardBackwardCpuSeconds),
        }
      : null;
  const peerEntry = technique.peer && peer ? peer.methods[technique.peer] : undefined;
  return {
    method: technique.name,
    label: technique.label,
    config: technique.config(options.steps),
    lr: technique.lr,
    notes: technique.notes,
    trainable_params: speed.trainableParams,
    all_params: speed.allParams,
    trainable_bytes: speed.memory.trainableBytes,
    optimizer_bytes: speed.memory.optimizerBytes,
    frozen_bytes: speed.memory.frozenBytes,
    peak_bytes: speed.peakBytes,
    step_seconds_median: step,
    step_seconds: speed.stepSeconds,
    step_cpu_seconds_median: cpu,
    step_cpu_seconds: speed.stepCpuSeconds,
    tokens_per_second: tokensPerSecond(tokens, step),
    flops_per_step: speed.flopsPerStep,
    mfu: modelFlopsUtilisation(speed.flopsPerStep, cpu, peakFlops),
    mfu_wall: modelFlopsUtilisation(speed.flopsPerStep, step, peakFlops),
    time_split: timeSplit,
    eval: {
      accuracy: sentiment.evaluation.accuracy!,
      accuracy_interval: sentiment.evaluation.accuracyInterval!,
      perplexity: sotu.evaluation.perplexity!,
      moby_perplexity_after_sentiment: sentiment.evaluation.mobyPerplexity,
      moby_perplexity_after_sotu: sotu.evaluation.mobyPerplexity,
    },
    forgetting_perplexity_delta: sotu.evaluation.mobyPerplexity - baseline.moby_perplexity,
    adapter_bytes: speed.adapterBytes,
    losses: { sentiment: sentiment.losses, sotu: sotu.losses },
    peer:
      peerEntry && 'step_seconds_median' in peerEntry
        ? {
            step_seconds_median: peerEntry.step_seconds_median,
            step_cpu_seconds_median: peerEntry.step_cpu_seconds_median,
            trainable_params: peerEntry.trainable_params,
            ratio: cpu / peerEntry.step_cpu_seconds_median,
            ratio_wall: step / peerEntry.step_seconds_median,
          }
        : null,
  };
}
