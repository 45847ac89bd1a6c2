import { type SafetensorsTensor, serializeAdapterConfig, writeSafetensorsAsync } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { architectureFor } from './architectures.js';
import type { CausalLM } from './causal_lm.js';
import { type CheckpointFiles, type ModelFiles, readText, toCheckpointFiles } from './checkpoint_files.js';
import { parseConfigJson } from './config.js';
import { readSafetensorsTensors } from './safetensors_reader.js';
import type { WeightSource } from './weights.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

/** A checkpoint that cannot be loaded: missing files, or tensors that do not fit the config. */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
}

export interface LoadModelOptions {
  /**
   * When true (default) a tensor the model needs but the checkpoint lacks, or one the model does not
   * know, is an error. When false, missing tensors are initialised and unknown ones ignored (shape
   * mismatches are errors either way).
   */
  strict?: boolean;
}

/** Tensors decoded from a checkpoint, handed to the model as it is built; records what went wrong. */
class CheckpointWeights implements WeightSource {
  readonly #tensors: Map<string, SafetensorsTensor>;
  readonly missing: string[] = [];
  readonly mismatched: string[] = [];

  constructor(tensors: Map<string, SafetensorsTensor>) {
    this.#tensors = tensors;
  }

  take(name: string, shape: readonly number[]): tf.Tensor | undefined {
    const stored = this.#tensors.get(name);
    if (!stored) {
      this.missing.push(name);
      return undefined;
    }
    this.#tensors.delete(name); // lets the decoded copy be collected once the model owns it
    if (!tf.util.arraysEqual(stored.shape, [...shape])) {
      this.mismatched.push(
        `"${name}" has shape [${stored.shape}] in the checkpoint, the model expects [${shape}]`,
      );
      return undefined;
    }
    if (!(stored.data instanceof Float32Array)) {
      this.mismatched.push(
        `"${name}" has dtype ${stored.dtype} in the checkpoint, the model expects a float tensor`,
      );
      return undefined;
    }
    return tf.tensor(stored.data, [...shape], 'float32');
  }

  leftover(): string[] {
    return [...this.#tensors.keys()];
  }
}

function isSafeFileName(name: string): boolean {
  return name !== '.' && name !== '..' && !/[/\\]/.test(name) && name.length > 0;
}

/** The weight files of a checkpoint: the shards named by the index, or the single file. */
async function weightFiles(files: CheckpointFiles, names: ReadonlySet<string>): Promise<string[]> {
  if (names.has(WEIGHTS_INDEX_FILE)) {
    const file = (await files.open(WEIGHTS_INDEX_FILE))!;
    let index: unknown;
    try {
      index = JSON.parse(await readText(file));
    } catch (error) {
      throw new ModelLoadError(
        `${files.location}: ${WEIGHTS_INDEX_FILE} is not valid JSON (${(error as Error).message})`,
      );
    }
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) {
      throw new ModelLoadError(`${files.location}: ${WEIGHTS_INDEX_FILE} has no "weight_map" object`);
    }
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const shard of shards) {
      if (typeof shard !== 'string' || !isSafeFileName(shard)) {
        throw new ModelLoadError(
          `${files.location}: ${WEIGHTS_INDEX_FILE} names an invalid shard ${JSON.stringify(shard)}`,
        );
      }
      if (!names.has(shard)) {
        throw new ModelLoadError(
          `${files.location}: shard ${shard} (listed in ${WEIGHTS_INDEX_FILE}) is missing`,
        );
      }
    }
    return shards as string[];
  }
  if (names.has(WEIGHTS_FILE)) return [WEIGHTS_FILE];
  const other = [...names].filter((n) => /\.(bin|pt|pth|ckpt|gguf|h5|msgpack)$/.test(n));
  throw new ModelLoadError(
    `${files.location}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}` +
      (other.length > 0 ? ` (found ${other.join(', ')}: only safetensors checkpoints are read)` : ''),
  );
}

/**
 * Loads a Hugging Face causal-LM folder: config.json plus model.safetensors, or a sharded
 * model.safetensors.index.json with its shards. Float16/bfloat16 weights are widened to float32.
 * Tensor names and shapes are checked against the config before the model is returned, in eval mode
 * (dropout off) as transformers returns it.
 */
export async function loadModel(
  files: ModelFiles | CheckpointFiles,
  options: LoadModelOptions = {},
): Promise<CausalLM> {
  const source = toCheckpointFiles(files);
  const strict = options.strict ?? true;
  const names = new Set(await source.list());
  const configFile = await source.open(CONFIG_FILE);
  if (!configFile) throw new ModelLoadError(`${source.location}: no ${CONFIG_FILE}`);
  const config = parseConfigJson(await readText(configFile), `${source.location}: ${CONFIG_FILE}`);
  const architecture = architectureFor(config.model_type);

  const stored = new Map<string, SafetensorsTensor>();
  const duplicates: string[] = [];
  for (const name of await weightFiles(source, names)) {
    const file = (await source.open(name))!;
    for (const [key, tensor] of await readSafetensorsTensors(file, `${source.location}: ${name}`)) {
      if (stored.has(key)) duplicates.push(key);
      stored.set(key, tensor);
    }
  }
  const storedNames = new Set(stored.keys());
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [key, tensor] of stored) {
    const modelKey = architecture.modelKey(key, config, storedNames);
    if (modelKey !== null) tensors.set(modelKey, tensor);
  }
  stored.clear();

  const weights = new CheckpointWeights(tensors);
  const model = architecture.create(config, weights);
  const problems = [
    ...duplicates.map((n) => `"${n}" is stored in more than one shard`),
    ...weights.mismatched,
    ...(strict ? weights.missing.map((n) => `missing tensor "${n}"`) : []),
    ...(strict ? weights.leftover().map((n) => `unexpected tensor "${n}"`) : []),
  ];
  if (problems.length > 0) {
    model.dispose();
    const shown = problems.slice(0, 12).join('; ');
    const more = problems.length > 12 ? `; and ${problems.length - 12} more` : '';
    throw new ModelLoadError(
      `${source.location}: the checkpoint does not fit its ${config.model_type} config: ${shown}${more}`,
    );
  }
  return model.eval(); // like from_pretrained: dropout off until train() is called
}

export interface SaveModelOptions {
  /**
   * Largest weight file in bytes; bigger models are split into `model-0000k-of-0000n.safetensors`
   * plus `model.safetensors.index.json`, as transformers does. Default 2 GB, below the 4 GiB a
   * JavaScript buffer may hold.
   */
  maxShardSize?: number;
  /** Storage dtype of the weights (default F32); config.json's `dtype` is set to match. */
  dtype?: 'F32' | 'F16' | 'BF16';
}

const DTYPE_NAMES = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/**
 * The files of a Hugging Face folder for `model`, one at a time (config.json, the weight files, the
 * index when sharded), so that a caller can write each before the next is built.
 */
export async function* modelFiles(
  model: CausalLM,
  options: SaveModelOptions = {},
): AsyncGenerator<[string, Uint8Array]> {
  const dtype = options.dtype ?? 'F32';
  const maxShardSize = options.maxShardSize ?? 2e9;
  if (!(maxShardSize > 0)) throw new Error(`saveModel: maxShardSize must be positive (got ${maxShardSize})`);
  const architecture = architectureFor(model.modelType);
  const config = { ...model.config, dtype: DTYPE_NAMES[dtype] };
  yield [
    CONFIG_FILE,
    new TextEncoder().encode(`${serializeAdapterConfig(config, architecture.floatKeys)}\n`),
  ];

  const bytesPerValue = dtype === 'F32' ? 4 : 2;
  const shards: [string, tf.Variable][][] = [];
  let current: [string, tf.Variable][] = [];
  let currentBytes = 0;
  let totalBytes = 0;
  let totalParameters = 0;
  for (const entry of model.stateDict()) {
    const bytes = entry[1].size * (entry[1].dtype === 'float32' ? bytesPerValue : 4);
    if (current.length > 0 && currentBytes + bytes > maxShardSize) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += bytes;
    totalBytes += bytes;
    totalParameters += entry[1].size;
  }
  shards.push(current);

  const metadata = { format: 'pt' };
  if (shards.length === 1) {
    yield [WEIGHTS_FILE, await writeSafetensorsAsync(new Map(shards[0]), metadata, { dtype })];
    return;
  }
  const count = String(shards.length).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const name = `model-${String(i + 1).padStart(5, '0')}-of-${count}.safetensors`;
    for (const [key] of shard) weightMap[key] = name;
    yield [name, await writeSafetensorsAsync(new Map(shard), metadata, { dtype })];
  }
  const index = {
    metadata: { total_parameters: totalParameters, total_size: totalBytes },
    weight_map: weightMap,
  };
  yield [WEIGHTS_INDEX_FILE, new TextEncoder().encode(`${serializeAdapterConfig(index)}\n`)];
}

/** All files of `modelFiles` in a map (browser downloads, in-memory copies). */
export async function saveModelFiles(
  model: CausalLM,
  options: SaveModelOptions = {},
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const [name, bytes] of modelFiles(model, options)) out.set(name, bytes);
  return out;
}
