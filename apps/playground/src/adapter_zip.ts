// An adapter folder as one zip (what the page downloads), and the adapter files out of a zip or a
// list of files (what it uploads).
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type AdapterFiles } from '@peft/core';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { PlaygroundError } from './errors.js';

/**
 * A zip holding `<folder>/adapter_config.json`, `<folder>/adapter_model.safetensors` and a short
 * README.md, as PEFT's `save_pretrained` lays the folder out. The safetensors bytes are stored (not
 * deflated): float data barely compresses.
 */
export function zipAdapter(folder: string, files: AdapterFiles, readme: string): Uint8Array {
  return zipSync({
    [folder]: {
      [ADAPTER_CONFIG_FILE]: strToU8(files.config),
      [ADAPTER_WEIGHTS_FILE]: [files.weights, { level: 0 }],
      'README.md': strToU8(readme),
    },
  });
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function isZip(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04
  );
}

/**
 * The adapter's two files from uploads: one zip (files found at any depth, by name), or the two files
 * themselves. Errors name what is missing.
 */
export function adapterFilesFrom(uploads: ReadonlyMap<string, Uint8Array>): AdapterFiles {
  const found = new Map<string, Uint8Array>();
  for (const [name, bytes] of uploads) {
    if (isZip(bytes)) {
      let entries: Record<string, Uint8Array>;
      try {
        entries = unzipSync(bytes, {
          filter: (file) => /(^|\/)adapter_(config\.json|model\.safetensors)$/.test(file.name),
        });
      } catch (error) {
        throw new PlaygroundError(`${name} is not a readable zip file (${(error as Error).message})`, 'file');
      }
      for (const [entry, data] of Object.entries(entries)) {
        const key = baseName(entry);
        if (found.has(key))
          throw new PlaygroundError(`${name} holds more than one ${key}: zip one adapter folder`, 'file');
        found.set(key, data);
      }
    } else {
      found.set(baseName(name), bytes);
    }
  }
  const config = found.get(ADAPTER_CONFIG_FILE);
  const weights = found.get(ADAPTER_WEIGHTS_FILE);
  const missing = [!config && ADAPTER_CONFIG_FILE, !weights && ADAPTER_WEIGHTS_FILE].filter(Boolean);
  if (missing.length > 0) {
    const given = [...uploads.keys()].join(', ') || 'nothing';
    throw new PlaygroundError(
      `no ${missing.join(' or ')} in ${given}: give the adapter folder's zip, or its adapter_config.json and adapter_model.safetensors`,
      'file',
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(config);
  } catch {
    throw new PlaygroundError(`${ADAPTER_CONFIG_FILE} is not UTF-8 text`, 'file');
  }
  return { config: text, weights: weights! };
}
