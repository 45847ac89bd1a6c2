// @peft/delta-lora/node: writing the standard LoRA export to an adapter folder (Node only).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type PeftModel } from '@peft/core';
import { adapterFolder, type SaveAdapterOptions, writeFileAtomic } from '@peft/core/node';
import { loraExportFiles } from './export.js';

/**
 * Save Delta-LoRA adapters as standard LoRA adapter folders (`peft_type: "LORA"`, see
 * `deltaLoraToLora`), laid out as PEFT's `save_pretrained` lays them out: `default` in `dir`, others
 * in `<dir>/<name>/`; every file written atomically. They apply to the ORIGINAL base model (the
 * pretrained weights), in Hugging Face PEFT or with @peft/lora. Returns the folders written.
 * The native form (LoRA tensors, the start snapshot and the accumulated change of each base weight,
 * `peft_type: "DELTA_LORA"`) is what core's `saveAdapter` writes.
 */
export async function saveAsLoraAdapter(
  peft: PeftModel,
  dir: string,
  options: SaveAdapterOptions = {},
): Promise<string[]> {
  const names = options.adapterNames ?? peft.adapterNames();
  if (names.length === 0) throw new Error('saveAsLoraAdapter: the model has no adapter to save');
  // Every export is computed before anything is written.
  const files = await Promise.all(names.map((name) => loraExportFiles(peft, name, options)));
  const folders: string[] = [];
  for (const [i, name] of names.entries()) {
    const folder = adapterFolder(dir, name);
    await mkdir(folder, { recursive: true });
    await writeFileAtomic(join(folder, ADAPTER_WEIGHTS_FILE), files[i]!.weights);
    await writeFileAtomic(join(folder, ADAPTER_CONFIG_FILE), files[i]!.config);
    folders.push(folder);
  }
  return folders;
}
