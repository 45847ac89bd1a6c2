import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  type AdapterFilesOptions,
  adapterFiles,
  type LoadAdapterOptions,
  loadAdapterFiles,
} from '../adapters/adapter_files.js';
import type { PeftModel } from '../adapters/peft_model.js';
import type { Module } from '../nn/module.js';
import { writeFileAtomic } from './atomic_write.js';

export interface SaveAdapterOptions extends AdapterFilesOptions {
  /** Adapters to save (default: all, like PEFT's `selected_adapters=None`). */
  adapterNames?: readonly string[];
}

/** Where PEFT puts an adapter: `default` in the folder itself, any other in `<dir>/<name>/`. */
export function adapterFolder(dir: string, name: string): string {
  return name === 'default' ? dir : join(dir, name);
}

/**
 * Save adapters as Hugging Face PEFT's `save_pretrained` does: `adapter_config.json` and
 * `adapter_model.safetensors` per adapter, `default` in `dir`, others in sub-folders. Each file is
 * written atomically. Returns the folders written.
 */
export async function saveAdapter(
  peft: PeftModel,
  dir: string,
  options: SaveAdapterOptions = {},
): Promise<string[]> {
  const names = options.adapterNames ?? peft.adapterNames();
  if (names.length === 0) throw new Error('saveAdapter: the model has no adapter to save');
  const folders: string[] = [];
  for (const name of names) {
    const files = await adapterFiles(peft, name, options);
    const folder = adapterFolder(dir, name);
    await mkdir(folder, { recursive: true });
    await writeFileAtomic(join(folder, ADAPTER_WEIGHTS_FILE), files.weights);
    await writeFileAtomic(join(folder, ADAPTER_CONFIG_FILE), files.config);
    folders.push(folder);
  }
  return folders;
}

/**
 * Load the adapter folder `dir` (as PEFT writes it, e.g. by `save_pretrained`) into `target`: a plain
 * model becomes a `PeftModel`; a `PeftModel` gains an adapter. The technique is chosen by the config's
 * `peft_type` (its package must be imported). All or nothing; errors name the folder.
 */
export async function loadAdapter<M extends Module>(
  target: M | PeftModel<M>,
  dir: string,
  options: LoadAdapterOptions = {},
): Promise<PeftModel<M>> {
  // Both files are read at once; every missing one is named, in a fixed order (not whichever read fails first).
  const [configRead, weightsRead] = await Promise.allSettled([
    readFile(join(dir, ADAPTER_CONFIG_FILE)),
    readFile(join(dir, ADAPTER_WEIGHTS_FILE)),
  ]);
  const missing = (
    [
      [ADAPTER_CONFIG_FILE, configRead],
      [ADAPTER_WEIGHTS_FILE, weightsRead],
    ] as const
  )
    .filter(
      ([, read]) => read.status === 'rejected' && (read.reason as NodeJS.ErrnoException).code === 'ENOENT',
    )
    .map(([file]) => file);
  if (missing.length > 0) {
    const what = missing.length === 1 ? `${missing[0]} is missing` : `${missing.join(' and ')} are missing`;
    throw new Error(`${dir} is not an adapter folder: ${what}`);
  }
  if (configRead.status === 'rejected') throw configRead.reason;
  if (weightsRead.status === 'rejected') throw weightsRead.reason;
  const config = configRead.value;
  const weights = weightsRead.value;
  try {
    return loadAdapterFiles(target, { config: config.toString('utf8'), weights }, options);
  } catch (error) {
    // Name the folder, keeping the error's type (AdapterConfigError, SafetensorsError, ...).
    if (error instanceof Error) error.message = `${dir}: ${error.message}`;
    throw error;
  }
}
