// Messages between the page (main thread) and the training worker. Requests carry an id and get
// exactly one `result` or `error` back; training progress and samples come as events in between.
import type { BackendReport } from '@peft/core';

export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'cpu';

/** Where the base model comes from. Files are sent as File objects or bytes (both structured-cloneable). */
export type ModelSourceMessage =
  | { kind: 'urls'; label: string; urls: Record<string, string> }
  | { kind: 'files'; label: string; files: Record<string, Blob | Uint8Array> }
  | { kind: 'random'; label: string; config: Record<string, unknown> };

export interface SampleSettings {
  prompt: string;
  maxNewTokens: number;
  /** 0: greedy (deterministic). */
  temperature: number;
  seed: number;
}

export interface TrainSettings {
  /** Registered technique name (`lora`, `lora-fa`, `vera`, `delta-lora`, `prefix`). */
  technique: string;
  /** The technique's adapter_config.json fields (PEFT's snake_case names). */
  config: Record<string, unknown>;
  lr: number;
  steps: number;
  batchSize: number;
  seqLen: number;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  seed: number;
  /**
   * Threads that train, this worker's included: more than one splits each batch over replica
   * workers (WASM or cpu backends). Default: every core (at most 4) where WASM runs single-threaded.
   */
  threads?: number;
}

export type Request =
  | {
      type: 'init';
      backend: BackendChoice;
      threads?: number;
      /** tfjs-backend-wasm binaries by file name, as absolute URLs. */
      wasmPaths: Record<string, string>;
    }
  | { type: 'load-model'; source: ModelSourceMessage }
  | { type: 'train'; settings: TrainSettings; text: string; sample: SampleSettings | null }
  | { type: 'generate'; sample: SampleSettings }
  | { type: 'export-adapter' }
  | { type: 'load-adapter'; files: Record<string, Blob | Uint8Array> };

/** Sent without an id, acted on between training steps. */
export type Control = { type: 'pause' } | { type: 'resume' } | { type: 'stop' };

export interface ModelInfo {
  label: string;
  modelType: string;
  parameters: number;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  positions: number;
  tokenizer: 'bytes' | 'tokenizer.json';
}

export interface TrainStart {
  technique: string;
  summary: string;
  trainable: number;
  blocks: number;
  tokens: number;
  steps: number;
  /** Threads that train (1: this worker alone). */
  threads: number;
}

export interface StepEvent {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

export interface TrainEnd {
  reason: 'done' | 'stopped';
  steps: number;
  seconds: number;
  firstLoss: number | null;
  lastLoss: number | null;
}

export interface AdapterZip {
  fileName: string;
  bytes: Uint8Array;
  /** e.g. "LORA, 12 tensors, 24 KB". */
  description: string;
}

export interface AdapterInfo {
  peftType: string;
  technique: string;
  tensors: number;
  parameters: number;
}

export type ResultOf<T extends Request['type']> = T extends 'init'
  ? { report: BackendReport; text: string }
  : T extends 'load-model'
    ? ModelInfo
    : T extends 'train'
      ? TrainEnd
      : T extends 'generate'
        ? { text: string }
        : T extends 'export-adapter'
          ? AdapterZip
          : T extends 'load-adapter'
            ? AdapterInfo
            : never;

export interface ErrorInfo {
  /** One line for a person: what went wrong. */
  message: string;
  /** What kind of problem: a file that cannot be read, memory, an unsupported model, ... */
  kind: 'file' | 'memory' | 'unsupported' | 'input' | 'backend' | 'internal';
  /** What to try. */
  hint?: string;
  /** The original error's name and stack, for the details view. */
  detail?: string;
}

export type WorkerEvent =
  | { type: 'result'; id: number; value: unknown }
  | { type: 'error'; id: number | null; error: ErrorInfo }
  | { type: 'train-start'; value: TrainStart }
  | { type: 'step'; value: StepEvent }
  | { type: 'state'; value: 'training' | 'paused' | 'generating' | 'idle' }
  | { type: 'sample'; phase: 'before' | 'after' | 'now'; text: string; done: boolean }
  | { type: 'log'; message: string };

export type RequestMessage = Request & { id: number };
