// One adapter as the two files Hugging Face PEFT's `save_pretrained` writes, for every technique:
// `adapter_config.json` (the technique's config, `inference_mode: true`) and
// `adapter_model.safetensors` (the adapter's tensors under PEFT's keys, metadata `format: pt`).
// Browser-safe: bytes and text in, bytes and text out; `@peft/core/node` adds the folder layout.
import type * as tf from '@tensorflow/tfjs-core';
import {
  type AdapterConfigJson,
  readAdapterConfig,
  serializeAdapterConfig,
} from '../files/adapter_config.js';
import { readSafetensorsAsTensors, writeSafetensorsAsync } from '../files/safetensors.js';
import type { Module } from '../nn/module.js';
import { PeftModel } from './peft_model.js';
import { type PeftMethod, peftMethodForType } from './registry.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** The safetensors metadata PEFT writes (and transformers expects). */
export const ADAPTER_WEIGHTS_METADATA: Readonly<Record<string, string>> = { format: 'pt' };

/** The contents of one adapter folder. */
export interface AdapterFiles {
  /** `adapter_config.json` text. */
  config: string;
  /** `adapter_model.safetensors` bytes. */
  weights: Uint8Array;
}

export interface AdapterFilesOptions {
  /** Written as `base_model_name_or_path` (default: the config's own value). */
  baseModelNameOrPath?: string | null;
}

/** `adapter_config.json` content for adapter `name` as PEFT saves it (`inference_mode` forced to true). */
export function adapterConfigJson(
  peft: PeftModel,
  name: string,
  options: AdapterFilesOptions = {},
): AdapterConfigJson {
  const { method, config } = peft.adapter(name);
  const json = method.config.toJson(config) as AdapterConfigJson;
  json.inference_mode = true;
  if (options.baseModelNameOrPath !== undefined) json.base_model_name_or_path = options.baseModelNameOrPath;
  return json;
}

/** The two files of adapter `name` (default: the active one). */
export async function adapterFiles(
  peft: PeftModel,
  name: string | null = peft.activeAdapter,
  options: AdapterFilesOptions = {},
): Promise<AdapterFiles> {
  if (name === null) throw new Error('no adapter to save');
  const config = serializeAdapterConfig(adapterConfigJson(peft, name, options));
  const weights = await writeSafetensorsAsync(peft.adapterStateDict(name), { ...ADAPTER_WEIGHTS_METADATA });
  return { config, weights };
}

export interface LoadAdapterOptions {
  /** Name of the loaded adapter (default `"default"`). */
  adapterName?: string;
  /** The model's `model_type`, for default target modules (default: the model's `modelType`). */
  modelType?: string;
  /** Receives warnings such as unknown config keys (default: console.warn). */
  onWarning?: (message: string) => void;
}

/** The technique that reads a config and the parsed config. */
function parseConfig(
  config: string | Record<string, unknown>,
  options: LoadAdapterOptions,
): { method: PeftMethod; parsed: unknown } {
  const json =
    typeof config === 'string' ? readAdapterConfig(config) : readAdapterConfig(JSON.stringify(config));
  const method = peftMethodForType(json.peft_type);
  const parsed = method.config.parse(json, options.onWarning ? { onWarning: options.onWarning } : {});
  return { method, parsed };
}

/**
 * Add an adapter read from its files to a model, like PEFT's `PeftModel.from_pretrained` (a plain
 * model) or `load_adapter` (a `PeftModel`). The technique is chosen by the config's `peft_type`.
 * All or nothing: when the config or the tensors do not fit, the error names the problem and the
 * model is left as it was.
 */
export function loadAdapterFiles<M extends Module>(
  target: M | PeftModel<M>,
  files: { config: string | Record<string, unknown>; weights: ArrayBuffer | ArrayBufferView },
  options: LoadAdapterOptions = {},
): PeftModel<M> {
  const { method, parsed } = parseConfig(files.config, options);
  const { tensors } = readSafetensorsAsTensors(files.weights);
  const name = options.adapterName ?? 'default';
  try {
    if (target instanceof PeftModel) {
      target.addAdapter(name, method, parsed);
      try {
        target.loadAdapterStateDict(name, tensors);
      } catch (error) {
        target.deleteAdapter(name);
        throw error;
      }
      return target;
    }
    const trainable = [...target.namedParameters()].map(([, p]) => [p, p.requiresGrad] as const);
    const peft = new PeftModel(
      target,
      options.modelType !== undefined ? { modelType: options.modelType } : {},
    );
    try {
      peft.addAdapter(name, method, parsed);
      peft.loadAdapterStateDict(name, tensors);
      return peft;
    } catch (error) {
      if (peft.adapterNames().includes(name)) peft.deleteAdapter(name);
      for (const [parameter, flag] of trainable) parameter.requiresGrad = flag;
      throw error;
    }
  } catch (error) {
    throw new Error(`cannot load the ${method.peftType} adapter: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    for (const tensor of tensors.values()) (tensor as tf.Tensor).dispose();
  }
}
