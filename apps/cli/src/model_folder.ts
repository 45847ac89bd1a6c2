// Loading what --model and --adapter name: a Hugging Face model folder, and optionally a PEFT adapter
// folder whose technique (by its peft_type) is registered by the packages imported in techniques.ts.
// The folders are checked first (files present, configs readable, safetensors headers sound, the
// model_type and peft_type known), before a backend starts, so that bad input fails fast and alone.
import { stat } from 'node:fs/promises';
import { type PeftMethod, type PeftModel, peftMethodForType } from '@peft/core';
import { loadAdapter } from '@peft/core/node';
import { architectureFor, type CausalLM, type ModelConfigJson } from '@peft/models';
import { loadModel } from '@peft/models/node';
import { inspectPath } from './commands/inspect.js';
import { UsageError } from './errors.js';
import './techniques.js';

/** Folders that passed `checkModelFolder`, with the model's config. */
export interface CheckedFolders {
  modelDir: string;
  adapterDir: string | undefined;
  config: ModelConfigJson;
  /** The technique that reads the adapter folder's peft_type. */
  adapterMethod: PeftMethod | null;
}

export interface LoadedModel {
  /** The model; with an adapter loaded, its forward runs the adapter. */
  model: CausalLM;
  /** The adapter wrapper when an adapter folder was given. */
  peft: PeftModel<CausalLM> | null;
}

async function requireFolder(dir: string, what: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (!info) throw new UsageError(`${what} folder not found: ${dir}`);
  if (!info.isDirectory()) throw new UsageError(`${what} must be a folder: ${dir}`);
}

/** Checks the model folder (and the adapter folder) without loading any tensor. */
export async function checkModelFolder(modelDir: string, adapterDir?: string): Promise<CheckedFolders> {
  await requireFolder(modelDir, 'model');
  const model = await inspectPath(modelDir);
  if (model.kind !== 'model')
    throw new UsageError(`--model must be a model folder, ${modelDir} holds an adapter`);
  const config = model.config as ModelConfigJson;
  architectureFor(config.model_type); // throws for an unsupported model_type, listing the supported ones
  let adapterMethod: PeftMethod | null = null;
  if (adapterDir !== undefined) {
    await requireFolder(adapterDir, 'adapter');
    const adapter = await inspectPath(adapterDir);
    if (adapter.kind !== 'adapter')
      throw new UsageError(`${adapterDir} is not an adapter folder (no adapter_config.json)`);
    adapterMethod = peftMethodForType(adapter.peft_type!); // an unregistered peft_type lists the known ones
  }
  return { modelDir, adapterDir, config, adapterMethod };
}

/** Loads checked folders: the model, then the adapter into it (needs a started backend). */
export async function loadModelFolder(folders: CheckedFolders): Promise<LoadedModel> {
  const model = await loadModel(folders.modelDir);
  if (folders.adapterDir === undefined) return { model, peft: null };
  try {
    const peft = await loadAdapter(model, folders.adapterDir, {
      onWarning: (message) => console.error(`peft: warning: ${message}`),
    });
    return { model, peft };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** The `vocab_size` of a config, when it has one. */
export function vocabSize(config: ModelConfigJson): number | null {
  const value = config.vocab_size;
  return typeof value === 'number' ? value : null;
}

/** A valid token id for padding: the config's pad token, else its first EOS token, else 0. */
export function padTokenId(config: ModelConfigJson): number {
  for (const key of ['pad_token_id', 'eos_token_id']) {
    const value = config[key];
    const id = Array.isArray(value) ? value[0] : value;
    if (typeof id === 'number') return id;
  }
  return 0;
}
