// `peft train`: trains an adapter of any registered technique (`--method`, looked up in core's
// registry) on a text file and saves it as a PEFT adapter folder. The technique's config comes in
// PEFT's field names, from an adapter_config.json-style file and/or `--set key=value`.
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import {
  blockBatches,
  constantScheduleWithWarmup,
  cosineScheduleWithWarmup,
  createTrainingOptimizer,
  DataParallelGradients,
  getPeftMethod,
  getPeftModel,
  type LearningRateSchedule,
  linearScheduleWithWarmup,
  manualSeed,
  type PeftMethod,
  type StepInfo,
  Trainer,
} from '@peft/core';
import { nodeDataParallelWorkers, saveAdapter, siblingModule } from '@peft/core/node';
import { type CausalLM, causalLMLoss } from '@peft/models';
import { SingleBar } from 'cli-progress';
import { startBackend } from '../backend.js';
import type { LrScheduler } from '../choices.js';
import { UsageError } from '../errors.js';
import { checkModelFolder, loadModelFolder, vocabSize } from '../model_folder.js';
import { checkOutFolder } from '../out_folder.js';
import { writeStdout } from '../output.js';
import { checkTokenRange, tokenizerFor } from '../tokenizer_option.js';
import { readDocuments, tokenBlocks } from '../training_data.js';
import type { ReplicaOptions } from './train_replica.js';

export interface TrainCommandOptions {
  model: string;
  method: string;
  data: string;
  out: string;
  config?: string;
  set?: string[];
  tokenizer?: string;
  steps: number;
  batchSize: number;
  seqLen: number;
  gradientAccumulationSteps: number;
  lr: number;
  weightDecay: number;
  lrScheduler: LrScheduler;
  warmupSteps: number;
  maxGradNorm: number;
  seed: number;
  threads?: number;
  logEvery: number;
  overwrite?: boolean;
  backend?: 'cpu' | 'wasm' | 'webgpu';
  verbose?: boolean;
}

/** `key=value` pairs of --set; a value is read as JSON when it parses (`8`, `true`, `["c_attn"]`), else as text. */
export function parseSetOptions(pairs: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--set takes key=value (got "${pair}")`);
    const value = pair.slice(at + 1);
    try {
      out[pair.slice(0, at)] = JSON.parse(value);
    } catch {
      out[pair.slice(0, at)] = value;
    }
  }
  return out;
}

/**
 * The technique's config from --config and --set (PEFT's adapter_config.json field names): as given
 * (for the worker threads' replicas) and parsed.
 */
async function methodConfig(
  method: PeftMethod,
  options: TrainCommandOptions,
): Promise<{ json: Record<string, unknown>; config: unknown }> {
  let json: Record<string, unknown> = {};
  if (options.config !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(options.config, 'utf8'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(
        code === 'ENOENT'
          ? `--config file not found: ${options.config}`
          : `--config ${options.config} is not valid JSON (${(error as Error).message})`,
      );
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new UsageError(`--config ${options.config} must hold a JSON object`);
    json = parsed as Record<string, unknown>;
  }
  json = { ...json, ...parseSetOptions(options.set ?? []) };
  if (json.peft_type !== undefined && json.peft_type !== method.peftType) {
    throw new UsageError(
      `the config's peft_type ${JSON.stringify(json.peft_type)} is not --method ${method.name}'s (${method.peftType})`,
    );
  }
  const config = method.config.parse(
    { ...json, peft_type: method.peftType },
    { onWarning: (message) => console.error(`peft: warning: ${message}`) },
  );
  return { json, config };
}

function schedule(options: TrainCommandOptions): LearningRateSchedule {
  const warmupSteps = options.warmupSteps;
  switch (options.lrScheduler) {
    case 'constant':
      return constantScheduleWithWarmup({ warmupSteps });
    case 'linear':
      return linearScheduleWithWarmup({ warmupSteps, trainingSteps: options.steps });
    case 'cosine':
      return cosineScheduleWithWarmup({ warmupSteps, trainingSteps: options.steps });
  }
}

/** Shows steps as they finish: a bar on a terminal, else a log line every --log-every steps. */
function stepReporter(options: TrainCommandOptions): { onStep(info: StepInfo): void; stop(): void } {
  const format = (info: StepInfo) =>
    `loss ${info.loss.toFixed(4)}, lr ${info.lr.toExponential(2)}, grad norm ${info.gradNorm.toFixed(3)}`;
  if (process.stderr.isTTY) {
    const bar = new SingleBar({ format: 'train [{bar}] {value}/{total} {status}', stream: process.stderr });
    bar.start(options.steps, 0, { status: '' });
    return { onStep: (info) => bar.update(info.step, { status: format(info) }), stop: () => bar.stop() };
  }
  return {
    onStep: (info) => {
      if (info.step % options.logEvery === 0 || info.step === options.steps)
        console.error(`step ${info.step}/${options.steps}: ${format(info)}`);
    },
    stop: () => {},
  };
}

export async function trainCommand(options: TrainCommandOptions): Promise<void> {
  await checkOutFolder(options.out, [options.model], options.overwrite ?? false);
  const folders = await checkModelFolder(options.model);
  const method = getPeftMethod(options.method);
  const { json, config } = await methodConfig(method, options);
  const vocab = vocabSize(folders.config);
  const positions = folders.config.n_positions ?? folders.config.max_position_embeddings;
  if (typeof positions === 'number' && options.seqLen > positions)
    throw new UsageError(`--seq-len ${options.seqLen} is longer than the model's ${positions} positions`);
  const tokenizer = await tokenizerFor(options.tokenizer, options.model, vocab);
  const blocks = tokenBlocks(await readDocuments(options.data), tokenizer, options.seqLen);
  checkTokenRange(blocks.flat(), vocab);

  const { backend } = await startBackend(options.backend, options.verbose ?? false);
  if (backend === 'webgpu' && (options.threads ?? 1) > 1)
    throw new UsageError(
      `--threads ${options.threads} needs the wasm or cpu backend (webgpu trains on the GPU)`,
    );
  const { model } = await loadModelFolder(folders);
  const threads =
    options.threads ??
    (backend === 'webgpu'
      ? 1
      : DataParallelGradients.defaultThreads({
          cores: availableParallelism(),
          modelBytes: 4 * model.countParameters().all,
        }));
  const countTokens = (batch: number[][]) => batch.length * (options.seqLen - 1);
  // The workers first: if one cannot start, nothing is trained or written.
  const gradients =
    threads > 1 && backend !== 'webgpu'
      ? await DataParallelGradients.create<number[][]>({
          startWorker: nodeDataParallelWorkers(siblingModule(import.meta.url, 'train_replica')),
          threads,
          setupOptions: {
            modelDir: options.model,
            method: method.name,
            config: json,
          } satisfies ReplicaOptions,
          backend,
          seed: options.seed,
          countTokens,
        })
      : null;
  try {
    await train(options, { method, config, model, blocks, countTokens, gradients });
  } finally {
    await gradients?.dispose();
  }
}

async function train(
  options: TrainCommandOptions,
  run: {
    method: PeftMethod;
    config: unknown;
    model: CausalLM;
    blocks: number[][];
    countTokens: (batch: number[][]) => number;
    gradients: DataParallelGradients<number[][]> | null;
  },
): Promise<void> {
  const { method, config, model, blocks, countTokens, gradients } = run;
  manualSeed(options.seed); // the adapter's initial weights
  const peft = getPeftModel(model, method, config, { modelType: model.modelType });
  await writeStdout(`${peft.trainableParametersSummary()}\n`);

  const reporter = stepReporter(options);
  let first: StepInfo | undefined;
  const trainer = new Trainer<number[][]>({
    module: peft,
    loss: (batch) => causalLMLoss(model, batch),
    optimizer: await createTrainingOptimizer(peft, { lr: options.lr, weightDecay: options.weightDecay }),
    schedule: schedule(options),
    gradientAccumulationSteps: options.gradientAccumulationSteps,
    ...(options.maxGradNorm > 0 ? { maxGradNorm: options.maxGradNorm } : {}),
    seed: options.seed, // dropout masks and the order of the blocks
    countTokens,
    ...(gradients ? { gradients } : {}),
    callbacks: {
      onStep: (info) => {
        first ??= info;
        reporter.onStep(info);
      },
    },
  });
  let result: Awaited<ReturnType<typeof trainer.train>>;
  try {
    result = await trainer.train(blockBatches(blocks, options.batchSize), { steps: options.steps });
  } finally {
    reporter.stop();
  }
  peft.eval();
  await saveAdapter(peft, options.out, { baseModelNameOrPath: options.model });
  peft.dispose();
  const threadCount = gradients?.threads ?? 1;
  const losses =
    first && result.last ? `, loss ${first.loss.toFixed(4)} -> ${result.last.loss.toFixed(4)}` : '';
  await writeStdout(
    `trained ${method.name} for ${result.stepsTaken} steps on ${blocks.length} blocks of ${options.seqLen} tokens, ${threadCount} thread${threadCount === 1 ? '' : 's'}${losses}; wrote ${options.out}\n`,
  );
}
