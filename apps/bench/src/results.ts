// The shape of results.json: one entry per technique plus the machine, the model, the baseline.
import type { SpeedResults } from './speed.js';
import type { TaskName } from './tasks.js';

export interface MachineInfo {
  backend: string;
  /** CPU threads the backend's kernels use (1 for wasm in Node and for cpu). */
  threads: number;
  simd: boolean;
  /**
   * Core's GEMM multiply-adds with relaxed SIMD (fused on FMA hardware). Absent from results
   * written before it was recorded (they multiplied and added separately).
   */
  relaxed_simd?: boolean;
  /** Plain matMul rate measured in this run (the MFU denominator). */
  matmul_gflops: number;
  /**
   * Every sample of that rate in run order (at the start, before each technique, at the end): how
   * disturbed the machine was along the run (a sample is the best of 8 calls). Absent from
   * results written before it was recorded.
   */
  matmul_gflops_samples?: number[];
  matmul_shape: [number, number, number];
  node: string;
  platform: string;
  cpu: string;
  cores: number;
  tfjs: string;
  /** 1-minute load average at the start and the end: other work on the machine skews timings. */
  load_average: [number, number];
}

/** CPU seconds of the step's parts (see `step_cpu_seconds_median`). */
export interface TimeSplit {
  forward_seconds: number;
  backward_seconds: number;
  /** The rest of the step: gradient norm and clipping, the optimizer update, technique hooks. */
  optimizer_seconds: number;
}

export interface PeerResult {
  step_seconds_median: number;
  step_cpu_seconds_median: number;
  trainable_params: number;
  /** Our median step CPU time over PEFT's on PyTorch (same shape, batch, threads). */
  ratio: number;
  /** The same with wall times. */
  ratio_wall: number;
}

/**
 * Reference points for the sentiment accuracies: a word-presence naive Bayes classifier trained on
 * the sentences the sentiment runs train on, and always answering the training set's majority class.
 */
export interface SentimentReference {
  training_sentences: number;
  test_sentences: number;
  word_naive_bayes_accuracy: number;
  word_naive_bayes_interval: [number, number];
  majority_class_accuracy: number;
}

export interface TechniqueResult {
  method: string;
  label: string;
  /** PEFT adapter_config.json fields given to the technique (null: full fine-tuning). */
  config: Record<string, unknown> | null;
  lr: number;
  notes: string;
  trainable_params: number;
  all_params: number;
  trainable_bytes: number;
  optimizer_bytes: number;
  frozen_bytes: number;
  peak_bytes: number;
  /** Median wall time of a step (after two warm-up steps). */
  step_seconds_median: number;
  step_seconds: number[];
  /**
   * Median CPU time of the process during a step: the work itself, without the time spent waiting
   * for a core on a shared machine. Speed ratios between techniques use it.
   */
  step_cpu_seconds_median: number;
  step_cpu_seconds: number[];
  /** Tokens per wall-clock second. */
  tokens_per_second: number;
  flops_per_step: number;
  /** Model FLOPs utilisation from the step's CPU time, against the matmul peak of the same run. */
  mfu: number;
  /** The same from the step's wall time. */
  mfu_wall: number;
  time_split: TimeSplit | null;
  eval: {
    /** Sentiment accuracy after the sentiment run. */
    accuracy: number;
    /** Its 95% Wilson interval over the test sentences (absent in results of older runs). */
    accuracy_interval?: [number, number];
    /** SOTU held-out perplexity after the SOTU run. */
    perplexity: number;
    moby_perplexity_after_sentiment: number;
    moby_perplexity_after_sotu: number;
  };
  /** Moby-Dick held-out perplexity after the SOTU run minus before (the base model's). */
  forgetting_perplexity_delta: number;
  /** Bytes of what the run produces: adapter_config.json + adapter_model.safetensors (full: the model). */
  adapter_bytes: number;
  losses: Record<TaskName, number[]>;
  peer: PeerResult | null;
}

export interface BenchResults {
  schema: 1;
  created: string;
  wall_seconds: number;
  command: string;
  options: {
    quick: boolean;
    steps: number;
    batch: number;
    length: number;
    seed: number;
    eval_windows: number;
    /** Sentiment test sentences scored (at most the 600 of the test split). */
    sentiment_test: number;
    timing_repeats: number;
    methods: string[];
  };
  model: { path: string; model_type: string; params: number; built_in: boolean };
  machine: MachineInfo;
  baseline: {
    accuracy: number;
    accuracy_interval?: [number, number];
    perplexity: number;
    moby_perplexity: number;
  };
  /** What the sentiment run's labelled sentences support without a language model (older runs: absent). */
  sentiment_reference?: SentimentReference;
  techniques: TechniqueResult[];
  /** Techniques asked for (or in the defaults) that could not run, and why. */
  skipped: { name: string; reason: string }[];
  /** How the --peer run went (null without --peer). */
  peer: { python: string; threads: number; torch: string; peft: string } | { error: string } | null;
  /**
   * Issue 10's side-by-side speed checks (`speed.ts`): techniques' steps interleaved, inference
   * merged/unmerged, generation along the context, several threads against one. Absent in results
   * written before they existed.
   */
  speed?: SpeedResults;
}
