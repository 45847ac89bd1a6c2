// `peft merge`: an adapter merged into its base model's weights, written as a plain Hugging Face model
// folder (what PEFT's `merge_and_unload()` then `save_pretrained()` give).
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendName } from '@peft/core';
import { saveModel } from '@peft/models/node';
import { SingleBar } from 'cli-progress';
import { startBackend } from '../backend.js';
import { MERGE_DTYPES, type MergeDtype } from '../choices.js';
import { UsageError } from '../errors.js';
import { checkModelFolder, loadModelFolder } from '../model_folder.js';
import { checkOutFolder } from '../out_folder.js';
import { writeStdout } from '../output.js';

const STORAGE_DTYPES = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/** Files of the base folder that belong with the merged model (tokenizer, generation settings). */
const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'generation_config.json',
];

export interface MergeCommandOptions {
  model: string;
  adapter: string;
  out: string;
  dtype?: MergeDtype;
  overwrite?: boolean;
  backend?: BackendName;
  verbose?: boolean;
}

/** The base model's storage dtype from config.json (`dtype`, or the older `torch_dtype`), else float32. */
function configDtype(config: Record<string, unknown>): MergeDtype {
  const value = config.dtype ?? config.torch_dtype;
  return MERGE_DTYPES.includes(value as MergeDtype) ? (value as MergeDtype) : 'float32';
}

export async function mergeCommand(options: MergeCommandOptions): Promise<void> {
  await checkOutFolder(options.out, [options.model, options.adapter], options.overwrite ?? false);
  const folders = await checkModelFolder(options.model, options.adapter);
  if (folders.adapterMethod?.kind === 'prompt') {
    throw new UsageError(
      `${options.adapter}: "${folders.adapterMethod.name}" adapters cannot be merged into the weights (they feed the attention, not the weights); use --adapter instead`,
    );
  }
  // Drawn on stderr only when it is a terminal (cli-progress skips other streams).
  const bar = new SingleBar({
    format: 'merge [{bar}] {value}/{total} {stage}',
    stream: process.stderr,
    hideCursor: true,
  });
  bar.start(4, 0, { stage: 'starting the backend' });
  try {
    await startBackend(options.backend, options.verbose ?? false);
    bar.update(1, { stage: 'loading the model and the adapter' });
    const { model, peft } = await loadModelFolder(folders);
    const dtype = options.dtype ?? configDtype(model.config);
    bar.update(2, { stage: 'merging' });
    const merged = peft!.mergeAndUnload({ safe: true });
    bar.update(3, { stage: `writing ${options.out}` });
    await saveModel(merged, options.out, { dtype: STORAGE_DTYPES[dtype] });
    const names = new Set(await readdir(options.model));
    for (const name of COMPANION_FILES)
      if (names.has(name)) await copyFile(join(options.model, name), join(options.out, name));
    merged.dispose();
    bar.update(4, { stage: 'done' });
  } finally {
    bar.stop();
  }
  await writeStdout(`merged ${options.adapter} into ${options.model}: wrote ${options.out}\n`);
}
