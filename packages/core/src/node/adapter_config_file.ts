import { readFile } from 'node:fs/promises';
import {
  AdapterConfigError,
  type AdapterConfigJson,
  readAdapterConfig,
  serializeAdapterConfig,
} from '../files/adapter_config.js';
import { writeFileAtomic } from './atomic_write.js';

/** Reads adapter_config.json (a JSON object with a `peft_type`); hand the result to a schema's `parse`. */
export async function readAdapterConfigFile(path: string): Promise<AdapterConfigJson> {
  const text = await readFile(path, 'utf8');
  try {
    return readAdapterConfig(text);
  } catch (error) {
    if (error instanceof AdapterConfigError) {
      throw new AdapterConfigError(`${path}: ${error.message}`, error.field);
    }
    throw error;
  }
}

/**
 * Writes adapter_config.json, atomically, as PEFT writes it. Pass a schema's `toJson(config)` so that
 * its float fields print as Python floats (see `serializeAdapterConfig`).
 */
export async function writeAdapterConfigFile(path: string, json: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(path, serializeAdapterConfig(json));
}
