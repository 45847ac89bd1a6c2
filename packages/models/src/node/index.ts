// @peft/models/node: load and save Hugging Face folders on disk (the main entry stays browser-safe).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@peft/core/node';
import type { CausalLM } from '../causal_lm.js';
import {
  type LoadModelOptions,
  loadModel as loadModelFiles,
  modelFiles,
  type SaveModelOptions,
} from '../checkpoint.js';
import type { CheckpointFiles, ModelFiles } from '../checkpoint_files.js';
import { type HuggingFaceTokenizer, loadTokenizer as loadTokenizerFiles } from '../tokenizer.js';
import { FolderNotFoundError, folderFiles } from './folder_files.js';

export { FolderNotFoundError, folderFiles };

/** `loadModel` from a local folder (config.json and safetensors weights), or from given files. */
export async function loadModel(
  dirOrFiles: string | ModelFiles | CheckpointFiles,
  options: LoadModelOptions = {},
): Promise<CausalLM> {
  return loadModelFiles(typeof dirOrFiles === 'string' ? await folderFiles(dirOrFiles) : dirOrFiles, options);
}

/**
 * Writes `model` as a Hugging Face folder (config.json, model.safetensors or shards plus
 * model.safetensors.index.json), creating the folder; each file is written atomically.
 */
export async function saveModel(model: CausalLM, dir: string, options: SaveModelOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  for await (const [name, bytes] of modelFiles(model, options)) await writeFileAtomic(join(dir, name), bytes);
}

/** `loadTokenizer` from a local folder (tokenizer.json, tokenizer_config.json), or from given files. */
export async function loadTokenizer(
  dirOrFiles: string | ModelFiles | CheckpointFiles,
): Promise<HuggingFaceTokenizer> {
  return loadTokenizerFiles(typeof dirOrFiles === 'string' ? await folderFiles(dirOrFiles) : dirOrFiles);
}
