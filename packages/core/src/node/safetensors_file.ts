import { readFile } from 'node:fs/promises';
import {
  type ReadSafetensorsOptions,
  readSafetensors,
  type SafetensorsContents,
  SafetensorsError,
  type SafetensorsTensor,
  type SafetensorsWritableMap,
  type WriteSafetensorsOptions,
  writeSafetensorsAsync,
} from '../files/safetensors.js';
import { writeFileAtomic } from './atomic_write.js';

/** Reads and validates a .safetensors file; format errors keep their code and gain the path. */
export async function readSafetensorsFile(
  path: string,
  opts?: ReadSafetensorsOptions,
): Promise<SafetensorsContents<SafetensorsTensor>> {
  const bytes = await readFile(path);
  try {
    return readSafetensors(bytes, opts);
  } catch (error) {
    if (error instanceof SafetensorsError) {
      throw new SafetensorsError(error.code, `${path}: ${error.message}`);
    }
    throw error;
  }
}

/** Writes tensors to a .safetensors file atomically (tfjs tensors are read asynchronously). */
export async function writeSafetensorsFile(
  path: string,
  tensors: SafetensorsWritableMap,
  metadata?: Record<string, string>,
  opts?: WriteSafetensorsOptions,
): Promise<void> {
  await writeFileAtomic(path, await writeSafetensorsAsync(tensors, metadata, opts));
}
