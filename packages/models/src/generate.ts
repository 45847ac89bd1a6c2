import { nextSeed } from '@peft/core';
import type { CausalLM, CausalLMInput, CausalLMOutput } from './causal_lm.js';
import { KVBuffer } from './kv_buffer.js';
import type { KVCache } from './kv_cache.js';

export interface GenerateOptions {
  /** Number of tokens to generate at most (per row). */
  maxNewTokens: number;
  /**
   * Sample instead of taking the most likely token. Default: true when `temperature` (> 0),
   * `topK` or `topP` is given, false otherwise (greedy).
   */
  doSample?: boolean;
  /** Softmax temperature when sampling (default 1); 0 means greedy. */
  temperature?: number;
  /** Sample among the `topK` most likely tokens (ties with the k-th kept, as in transformers). */
  topK?: number;
  /** Sample among the most likely tokens whose probability mass reaches `topP` (nucleus). */
  topP?: number;
  /** Seed of the sampler (default: the next seed of core's generator, so `manualSeed` applies). */
  seed?: number;
  /** A row stops after emitting one of these (default: the config's `eos_token_id`; null: never). */
  eosTokenId?: number | readonly number[] | null;
  /** Left padding of shorter prompts and filler of finished rows (default: the first EOS id, else 0). */
  padTokenId?: number;
  /** Reuse keys and values of earlier tokens (default true); false recomputes the whole sequence. */
  useCache?: boolean;
  /** Called with each new token as soon as it is chosen, with its row in the batch. */
  onToken?: (token: number, row: number) => void | Promise<void>;
}

/** mulberry32: a small, fast, seedable generator of floats in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Sampling {
  doSample: boolean;
  temperature: number;
  topK: number | null;
  topP: number | null;
  random: () => number;
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/**
 * The next token from one row of logits: argmax, or a sample after transformers' warpers in their
 * order (temperature, top-k, top-p).
 */
export function pickToken(logits: Float32Array, sampling: Sampling): number {
  if (!sampling.doSample) return argmax(logits);
  const order = Array.from(logits.keys())
    .filter((i) => logits[i]! > Number.NEGATIVE_INFINITY)
    .sort((a, b) => logits[b]! - logits[a]!);
  if (order.length === 0) throw new Error('generate: every logit is -Infinity');
  let kept = order.length;
  if (sampling.topK !== null && sampling.topK < kept) {
    const threshold = logits[order[sampling.topK - 1]!]!;
    kept = sampling.topK;
    while (kept < order.length && logits[order[kept]!]! === threshold) kept++;
  }
  const top = logits[order[0]!]! / sampling.temperature;
  const weights = new Float64Array(kept);
  let total = 0;
  for (let i = 0; i < kept; i++) {
    weights[i] = Math.exp(logits[order[i]!]! / sampling.temperature - top);
    total += weights[i]!;
  }
  if (sampling.topP !== null) {
    // Keep tokens while the probability mass above them is below topP (the top token always).
    let above = 0;
    let nucleus = 0;
    while (nucleus < kept && above < sampling.topP * total) above += weights[nucleus++]!;
    kept = nucleus;
    total = above;
  }
  let r = sampling.random() * total;
  for (let i = 0; i < kept; i++) {
    r -= weights[i]!;
    if (r < 0) return order[i]!;
  }
  return order[kept - 1]!;
}

function eosIds(model: CausalLM, option: GenerateOptions['eosTokenId']): number[] {
  const value = option === undefined ? model.config.eos_token_id : option;
  if (value === null || value === undefined) return [];
  return (Array.isArray(value) ? value : [value]) as number[];
}

function samplingOf(options: GenerateOptions): Sampling {
  const { temperature, topK, topP } = options;
  if (temperature !== undefined && !(temperature >= 0))
    throw new Error(`generate: temperature must be >= 0 (got ${temperature})`);
  if (topK !== undefined && !(Number.isInteger(topK) && topK > 0))
    throw new Error(`generate: topK must be a positive integer (got ${topK})`);
  if (topP !== undefined && !(topP > 0 && topP <= 1))
    throw new Error(`generate: topP must be in (0, 1] (got ${topP})`);
  const doSample =
    options.doSample ??
    ((temperature !== undefined && temperature > 0) || topK !== undefined || topP !== undefined);
  return {
    doSample: doSample && temperature !== 0,
    temperature: temperature ?? 1,
    topK: topK ?? null,
    topP: topP ?? null,
    random: seededRandom(options.seed ?? nextSeed()),
  };
}

/**
 * One forward pass with dropout off. Modes are switched and restored around the synchronous call
 * only, so concurrent generations (and training between awaits) never see each other's modes.
 */
function forwardInEvalMode(model: CausalLM, input: CausalLMInput): CausalLMOutput {
  const modes = [...model.namedModules()].map(([, m]) => [m, m.training] as const);
  model.eval();
  try {
    return model.forward(input);
  } finally {
    for (const [module, training] of modes) module.training = training;
  }
}

/**
 * Generates up to `maxNewTokens` tokens after each prompt and returns the new tokens (up to and
 * including an EOS). A batch of prompts of different lengths is left-padded, masked, and given
 * positions counted from each row's first real token, as transformers does. Dropout is off during
 * generation; the model's train/eval modes are left as they were.
 */
export async function generate(
  model: CausalLM,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<number[]>;
export async function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<number[][]>;
export async function generate(
  model: CausalLM,
  prompt: readonly number[] | readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<number[] | number[][]> {
  const single = !Array.isArray(prompt[0]);
  const prompts = (single ? [prompt] : prompt) as readonly (readonly number[])[];
  const { maxNewTokens } = options;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    throw new Error(`generate: maxNewTokens must be a non-negative integer (got ${maxNewTokens})`);
  }
  if (prompts.length === 0 || prompts.some((p) => p.length === 0))
    throw new Error('generate: every prompt needs a token');
  const sampling = samplingOf(options);
  const eos = eosIds(model, options.eosTokenId);
  const pad = options.padTokenId ?? eos[0] ?? 0;
  const useCache = options.useCache ?? true;
  const width = Math.max(...prompts.map((p) => p.length));
  const padded = prompts.some((p) => p.length !== width);
  const sequences = prompts.map((p) => [...new Array<number>(width - p.length).fill(pad), ...p]);
  const masks = prompts.map((p) => [
    ...new Array<number>(width - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  // transformers: position = cumsum(mask) - 1, and 1 where masked.
  const positions = prompts.map((p) => [
    ...new Array<number>(width - p.length).fill(1),
    ...Array.from(p, (_, i) => i),
  ]);
  const nextPosition = prompts.map((p) => p.length);
  const outputs: number[][] = prompts.map(() => []);
  const finished = prompts.map(() => false);

  let cache: KVCache | undefined;
  // The in-place cache where core's kernels run it (wasm) and nothing else needs the general path
  // (padding masks, attention prefixes): the same tokens, a flat cost per token.
  // (Sized for every token, as the concatenated cache would grow; a model's own position limit
  // still stops generation first, with its own error.)
  const capacity = width + maxNewTokens;
  const buffer =
    useCache && !padded && model.attentionPrefix === null && maxNewTokens > 0 && KVBuffer.available()
      ? new KVBuffer(model.attentionInfo, prompts.length, capacity)
      : undefined;
  try {
    for (let step = 0; step < maxNewTokens && !finished.every(Boolean); step++) {
      const incremental = useCache && (cache !== undefined || (buffer !== undefined && buffer.length > 0));
      const input: CausalLMInput = {
        inputIds: incremental ? sequences.map((s) => [s[s.length - 1]!]) : sequences,
        logitsToKeep: 1,
        ...(buffer ? { kvBuffer: buffer } : { useCache }),
        ...(cache ? { cache } : {}),
        ...(padded
          ? {
              attentionMask: masks,
              positionIds: incremental ? positions.map((p) => [p[p.length - 1]!]) : positions,
            }
          : {}),
      };
      const { logits, cache: next } = forwardInEvalMode(model, input);
      cache?.dispose();
      cache = next;
      const values = (await logits.data()) as Float32Array;
      logits.dispose();
      const vocab = values.length / prompts.length;
      for (let row = 0; row < prompts.length; row++) {
        const token = finished[row]
          ? pad
          : pickToken(values.subarray(row * vocab, (row + 1) * vocab), sampling);
        sequences[row]!.push(token);
        masks[row]!.push(1);
        positions[row]!.push(nextPosition[row]!++);
        if (finished[row]) continue;
        outputs[row]!.push(token);
        await options.onToken?.(token, row);
        if (eos.includes(token)) finished[row] = true;
      }
    }
  } finally {
    cache?.dispose();
    buffer?.dispose();
  }
  return single ? outputs[0]! : outputs;
}
