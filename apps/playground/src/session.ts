// What the training worker does, free of any messaging: one base model (kept as its source so that a
// fresh copy can be rebuilt), one adapter at a time, training with pause and stop, generation, and
// adapter files out and in. Runs in the worker and, for the unit tests, in Node.
import {
  type AdapterFiles,
  adapterFiles,
  blockBatches,
  constantScheduleWithWarmup,
  createTrainingOptimizer,
  DataParallelGradients,
  type DataParallelWorker,
  getPeftMethod,
  getPeftModel,
  loadAdapterFiles,
  manualSeed,
  type PeftModel,
  readSafetensorsHeader,
  Trainer,
} from '@peft/core';
import { loraExportFiles } from '@peft/delta-lora';
import {
  architectureFor,
  ByteTokenizer,
  type CausalLM,
  causalLMLoss,
  createModel,
  type FileData,
  generate,
  loadModel,
  loadTokenizer,
  type ModelConfigJson,
  parseConfigJson,
  type Tokenizer,
} from '@peft/models';
import { adapterFilesFrom, zipAdapter } from './adapter_zip.js';
import { tokenBlocks } from './data.js';
import { PlaygroundError } from './errors.js';
import type {
  AdapterInfo,
  AdapterZip,
  ModelInfo,
  SampleSettings,
  StepEvent,
  TrainEnd,
  TrainSettings,
  TrainStart,
} from './protocol.js';
// Every technique package registers itself with core's registry on import.
import '@peft/delta-lora';
import '@peft/lora';
import '@peft/lora-fa';
import '@peft/prefix';
import '@peft/vera';

/** A base model's source, kept so that the original weights can be rebuilt after training moved them. */
export type ModelSource =
  | { kind: 'files'; label: string; files: ReadonlyMap<string, FileData> }
  | { kind: 'random'; label: string; config: ModelConfigJson };

/** Pause and stop, set from outside between steps. */
export interface TrainControl {
  readonly paused: boolean;
  readonly stopped: boolean;
  /** Resolves when resumed or stopped. */
  whilePaused(): Promise<void>;
}

export interface SessionEvents {
  trainStart?(start: TrainStart): void;
  step?(step: StepEvent): void;
  state?(state: 'training' | 'paused'): void;
  sample?(phase: 'before' | 'after', text: string, done: boolean): void;
  warning?(message: string): void;
}

/**
 * Training on several threads: replica workers, each with its own backend and copy of the model
 * (`replica_worker.ts` in the page), that compute shards of each batch (core's DataParallelGradients).
 */
export interface ReplicaWorkers {
  startWorker: (rank: number) => DataParallelWorker;
  backend: 'wasm' | 'cpu';
  wasmPaths?: Record<string, string>;
  /** Cores to train on when the settings leave it open (fewer where the replicas' copies would not fit). */
  cores: number;
  /**
   * Bytes the replicas' copies of the model may take in all when the threads are left open (default
   * 1 GiB): each replica holds the whole model, so a large one gets fewer (or none).
   */
  autoMemoryBytes?: number;
}

/** What a replica worker builds its copy from (`replica.ts`). */
export interface ReplicaOptions {
  source: ModelSource;
  technique: string;
  config: Record<string, unknown>;
}

/** Seed of the random weights of a `random` source: the same weights each time it is rebuilt. */
const RANDOM_MODEL_SEED = 1234;

function nextTask(): Promise<void> {
  // A macrotask, so that control messages queued meanwhile (pause, stop) are delivered.
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function numberField(config: ModelConfigJson, ...keys: string[]): number {
  for (const key of keys) {
    const value = (config as Record<string, unknown>)[key];
    if (typeof value === 'number') return value;
  }
  return 0;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Reads the files of a model folder served over HTTP (the built-in base model). */
export async function fetchModelFiles(
  urls: Readonly<Record<string, string>>,
  fetchImpl: typeof fetch = fetch,
): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  await Promise.all(
    Object.entries(urls).map(async ([name, url]) => {
      const response = await fetchImpl(url);
      if (!response.ok) {
        throw new PlaygroundError(`cannot fetch ${name} (${response.status} ${response.statusText})`, 'file');
      }
      files.set(name, new Uint8Array(await response.arrayBuffer()));
    }),
  );
  return files;
}

/** A base model (eval mode) from its source, and its tokenizer when asked. */
export async function buildModel(
  source: ModelSource,
  withTokenizer: boolean,
): Promise<{ model: CausalLM; tokenizer: Tokenizer | undefined }> {
  if (source.kind === 'random') {
    manualSeed(RANDOM_MODEL_SEED);
    const model = createModel(source.config).eval();
    return { model, tokenizer: withTokenizer ? tokenizerFor(source.config, null) : undefined };
  }
  const files = source.files;
  const configData = files.get('config.json');
  if (configData === undefined) {
    const names = [...files.keys()];
    throw new PlaygroundError(
      `${source.label}: no config.json (found ${names.length ? names.slice(0, 8).join(', ') : 'no files'}): open a Hugging Face model folder`,
      'file',
    );
  }
  const text =
    typeof configData === 'string'
      ? configData
      : configData instanceof Blob
        ? await configData.text()
        : new TextDecoder().decode(configData as ArrayBufferView);
  // The config first: an unsupported model_type is reported before any weight is read.
  const config = parseConfigJson(text, `${source.label}: config.json`);
  architectureFor(config.model_type);
  let tokenizer: Tokenizer | undefined;
  if (withTokenizer)
    tokenizer = files.has('tokenizer.json') ? await loadTokenizer(files) : tokenizerFor(config, source.label);
  const model = await loadModel(files);
  return { model, tokenizer };
}

export class Session {
  readonly #replicas: ReplicaWorkers | null;
  #source: ModelSource | undefined;
  #tokenizer: Tokenizer | undefined;
  #info: ModelInfo | undefined;
  #model: CausalLM | undefined;
  #peft: PeftModel | undefined;
  /** Steps the current adapter was trained for (null: loaded from files). */
  #trainedSteps: number | null = null;

  /** `replicas`: where training on several threads gets its workers (none: this thread only). */
  constructor(options: { replicas?: ReplicaWorkers } = {}) {
    this.#replicas = options.replicas ?? null;
  }

  get model(): CausalLM | undefined {
    return this.#model;
  }

  get peft(): PeftModel | undefined {
    return this.#peft;
  }

  get info(): ModelInfo | undefined {
    return this.#info;
  }

  /** Builds the base model and its tokenizer; the previous model is dropped only once this one works. */
  async loadModel(source: ModelSource): Promise<ModelInfo> {
    const { model, tokenizer } = await buildModel(source, true);
    this.#dropModel();
    this.#source = source;
    this.#model = model;
    this.#tokenizer = tokenizer!;
    const config = model.config as ModelConfigJson;
    this.#info = {
      label: source.label,
      modelType: model.modelType,
      parameters: model.countParameters().all,
      layers: numberField(config, 'n_layer', 'num_hidden_layers'),
      hiddenSize: numberField(config, 'n_embd', 'hidden_size'),
      vocabSize: numberField(config, 'vocab_size'),
      positions: numberField(config, 'n_positions', 'max_position_embeddings'),
      tokenizer: tokenizer instanceof ByteTokenizer ? 'bytes' : 'tokenizer.json',
    };
    return this.#info;
  }

  /** Training threads when the settings leave it open: the replicas' copies within their budget. */
  #autoThreads(): number {
    const replicas = this.#replicas;
    if (!replicas || !this.#info) return 1;
    return DataParallelGradients.defaultThreads({
      cores: replicas.cores,
      modelBytes: 4 * this.#info.parameters,
      ...(replicas.autoMemoryBytes !== undefined ? { memoryBytes: replicas.autoMemoryBytes } : {}),
    });
  }

  /** The base model without any adapter and with its original weights. */
  async #freshBase(): Promise<CausalLM> {
    if (!this.#source || !this.#model) throw new PlaygroundError('load a base model first');
    if (!this.#peft) return this.#model;
    const { model } = await buildModel(this.#source, false);
    this.#peft.dispose(); // the wrapped model's tensors too
    this.#peft = undefined;
    this.#model = model;
    return model;
  }

  #dropModel(): void {
    if (this.#peft) this.#peft.dispose();
    else this.#model?.dispose();
    this.#peft = undefined;
    this.#model = undefined;
    this.#trainedSteps = null;
  }

  dispose(): void {
    this.#dropModel();
    this.#source = undefined;
  }

  /** Text generated after `sample.prompt` by the current model (with its adapter, if any). */
  async generate(sample: SampleSettings, onText?: (text: string) => void): Promise<string> {
    const model = this.#model;
    const tokenizer = this.#tokenizer;
    if (!model || !tokenizer || !this.#info) throw new PlaygroundError('load a base model first');
    const { maxNewTokens, temperature } = sample;
    if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) {
      throw new PlaygroundError(`new tokens must be a whole number of at least 1 (got ${maxNewTokens})`);
    }
    if (!(temperature >= 0)) throw new PlaygroundError(`temperature must be 0 or more (got ${temperature})`);
    const positions = this.#info.positions || Number.POSITIVE_INFINITY;
    if (maxNewTokens >= positions) {
      throw new PlaygroundError(`new tokens must be fewer than the model's ${positions} positions`);
    }
    let prompt = tokenizer.encode(sample.prompt);
    if (prompt.length === 0) {
      if (tokenizer.bosTokenId === null) throw new PlaygroundError('type a prompt to generate from');
      prompt = [tokenizer.bosTokenId];
    }
    prompt = prompt.slice(-(positions - maxNewTokens)); // the context the model can see
    const tokens: number[] = [];
    await generate(model, prompt, {
      maxNewTokens,
      ...(temperature > 0 ? { doSample: true, temperature } : { doSample: false }),
      seed: sample.seed,
      onToken: onText
        ? (token) => {
            tokens.push(token);
            onText(tokenizer.decode(tokens, { skipSpecialTokens: true }));
          }
        : (token) => {
            tokens.push(token);
          },
    });
    return tokenizer.decode(tokens, { skipSpecialTokens: true });
  }

  /**
   * Trains a new adapter of `settings.technique` on a fresh copy of the base model. Between steps it
   * yields to the event loop, then honours pause and stop.
   */
  async train(
    settings: TrainSettings,
    text: string,
    sample: SampleSettings | null,
    control: TrainControl,
    events: SessionEvents = {},
  ): Promise<TrainEnd> {
    if (!this.#tokenizer || !this.#info) throw new PlaygroundError('load a base model first');
    const { steps, batchSize, seqLen } = settings;
    const whole = (value: number, name: string, min: number) => {
      if (!(Number.isInteger(value) && value >= min))
        throw new PlaygroundError(`${name} must be a whole number of at least ${min} (got ${value})`);
    };
    whole(steps, 'steps', 1);
    whole(batchSize, 'batch size', 1);
    whole(seqLen, 'sequence length', 2);
    whole(settings.warmupSteps, 'warm-up steps', 0);
    const threads = settings.threads ?? this.#autoThreads();
    whole(threads, 'training threads', 1);
    if (threads > 1 && !this.#replicas) {
      throw new PlaygroundError(
        'training on several threads needs the WASM or cpu backend (WebGPU trains on the GPU)',
        'input',
      );
    }
    if (!(settings.lr > 0))
      throw new PlaygroundError(`the learning rate must be positive (got ${settings.lr})`);
    if (this.#info.positions > 0 && seqLen > this.#info.positions) {
      throw new PlaygroundError(
        `the sequence length ${seqLen} is longer than the model's ${this.#info.positions} positions`,
      );
    }
    const method = getPeftMethod(settings.technique);
    const config = method.config.parse(
      { ...settings.config, peft_type: method.peftType },
      { onWarning: (message) => events.warning?.(message) },
    );
    const blocks = tokenBlocks(text, this.#tokenizer, seqLen);

    const base = await this.#freshBase();
    this.#trainedSteps = null;
    if (sample)
      events.sample?.(
        'before',
        await this.generate(sample, (t) => events.sample?.('before', t, false)),
        true,
      );

    const countTokens = (batch: number[][]) => batch.length * (seqLen - 1);
    // Replicas first: if one cannot start, nothing has changed but the fresh base.
    const replicas = this.#replicas;
    const gradients =
      threads > 1 && replicas
        ? await DataParallelGradients.create<number[][]>({
            startWorker: replicas.startWorker,
            threads,
            setupOptions: {
              source: this.#source!,
              technique: settings.technique,
              config: settings.config,
            } satisfies ReplicaOptions,
            backend: replicas.backend,
            ...(replicas.wasmPaths ? { wasmPaths: replicas.wasmPaths } : {}),
            seed: settings.seed,
            countTokens,
          })
        : null;
    try {
      manualSeed(settings.seed); // the adapter's initial weights
      const peft = getPeftModel(base, method, config, { modelType: base.modelType });
      this.#peft = peft;
      this.#trainedSteps = 0;
      const { trainable } = peft.countParameters();
      events.trainStart?.({
        technique: method.name,
        summary: peft.trainableParametersSummary(),
        trainable,
        blocks: blocks.length,
        tokens: blocks.length * seqLen,
        steps,
        threads: gradients?.threads ?? 1,
      });
      const trainer = new Trainer<number[][]>({
        module: peft,
        loss: (batch) => causalLMLoss(base, batch),
        optimizer: await createTrainingOptimizer(peft, {
          lr: settings.lr,
          weightDecay: settings.weightDecay,
        }),
        schedule: constantScheduleWithWarmup({ warmupSteps: settings.warmupSteps }),
        ...(settings.maxGradNorm > 0 ? { maxGradNorm: settings.maxGradNorm } : {}),
        seed: settings.seed, // dropout masks and the order of the blocks
        countTokens,
        ...(gradients ? { gradients } : {}),
      });
      const batches = blockBatches(blocks, batchSize);
      const started = performance.now();
      let paused = 0;
      let firstLoss: number | null = null;
      let lastLoss: number | null = null;
      events.state?.('training');
      try {
        while (trainer.step < steps) {
          await nextTask();
          if (control.paused && !control.stopped) {
            const pausedAt = performance.now();
            events.state?.('paused');
            await control.whilePaused();
            paused += performance.now() - pausedAt;
            if (!control.stopped) events.state?.('training');
          }
          if (control.stopped) break;
          const t0 = performance.now();
          const info = await trainer.trainStep(batches.next().value!);
          const seconds = (performance.now() - t0) / 1000;
          this.#trainedSteps = info.step;
          firstLoss ??= info.loss;
          lastLoss = info.loss;
          const tokens = info.tokens ?? 0;
          events.step?.({
            step: info.step,
            steps,
            loss: info.loss,
            lr: info.lr,
            gradNorm: info.gradNorm,
            tokens,
            seconds,
            tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
          });
        }
      } finally {
        peft.eval();
        trainer.dispose();
      }
      const end: TrainEnd = {
        reason: trainer.step < steps ? 'stopped' : 'done',
        steps: trainer.step,
        seconds: (performance.now() - started - paused) / 1000,
        firstLoss,
        lastLoss,
      };
      if (sample)
        events.sample?.(
          'after',
          await this.generate(sample, (t) => events.sample?.('after', t, false)),
          true,
        );
      return end;
    } finally {
      await gradients?.dispose();
    }
  }

  /** The current adapter as a zipped Hugging Face PEFT folder. */
  async exportAdapter(): Promise<AdapterZip> {
    const peft = this.#peft;
    if (!peft || peft.activeAdapter === null || !this.#info) {
      throw new PlaygroundError('there is no adapter yet: train one or load one first');
    }
    const { method } = peft.adapter(peft.activeAdapter);
    const options = { baseModelNameOrPath: this.#info.label };
    // Delta-LoRA also moved the base weights: its standard LoRA export (rank 2r) carries that, for the
    // original base model, in files PEFT loads.
    const files: AdapterFiles =
      method.name === 'delta-lora'
        ? await loraExportFiles(peft, peft.activeAdapter, options)
        : await adapterFiles(peft, peft.activeAdapter, options);
    const peftType = String((JSON.parse(files.config) as { peft_type?: unknown }).peft_type);
    const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
    const folder = `${slug(this.#info.label)}-${method.name}-adapter`;
    const trained =
      this.#trainedSteps === null
        ? 'loaded into the playground'
        : `trained for ${this.#trainedSteps} steps in the browser`;
    const readme = [
      `# ${method.name} adapter for ${this.#info.label}`,
      '',
      `A Hugging Face PEFT adapter (peft_type ${peftType}), ${trained} with the @peft playground.`,
      method.name === 'delta-lora'
        ? 'Delta-LoRA moved the base weights too; this is its standard LoRA export (rank 2r) for the original base model.'
        : '',
      '',
      '```python',
      'from peft import PeftModel',
      `model = PeftModel.from_pretrained(base_model, "${folder}")`,
      '```',
      '',
    ]
      .filter((line, i, lines) => line !== '' || lines[i - 1] !== '')
      .join('\n');
    const bytes = zipAdapter(folder, files, readme);
    return {
      fileName: `${folder}.zip`,
      bytes,
      description: `${peftType} adapter, ${formatBytes(files.weights.byteLength)} of weights`,
    };
  }

  /** Puts an uploaded adapter (zip or its two files) on a fresh copy of the base model. */
  async loadAdapter(
    uploads: ReadonlyMap<string, Uint8Array>,
    onWarning?: (message: string) => void,
  ): Promise<AdapterInfo> {
    const files = adapterFilesFrom(uploads);
    const base = await this.#freshBase();
    const peft = loadAdapterFiles(base, files, {
      modelType: base.modelType,
      ...(onWarning ? { onWarning } : {}),
    });
    peft.eval();
    this.#peft = peft;
    this.#trainedSteps = null;
    const { tensors } = readSafetensorsHeader(files.weights);
    const { method } = peft.adapter(peft.activeAdapter!);
    return {
      peftType: method.peftType,
      technique: method.name,
      tensors: tensors.length,
      parameters: tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0),
    };
  }
}

/** The tokenizer of a folder without tokenizer.json: bytes for a 256-token vocabulary, else an error. */
function tokenizerFor(config: ModelConfigJson, label: string | null): Tokenizer {
  const vocab = numberField(config, 'vocab_size');
  if (vocab === 256) return new ByteTokenizer();
  throw new PlaygroundError(
    `${label ?? 'the model'} has no tokenizer.json and its vocabulary (${vocab}) is not the 256 bytes: add the model's tokenizer.json to the folder`,
    'file',
  );
}
