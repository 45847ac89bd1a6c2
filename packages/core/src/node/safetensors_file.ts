import { open, readFile } from 'node:fs/promises';
import {
  type ReadSafetensorsOptions,
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsContents,
  SafetensorsError,
  type SafetensorsHeader,
  type SafetensorsTensor,
  type SafetensorsWritableMap,
  safetensorsHeaderBytes,
  type WriteSafetensorsOptions,
  writeSafetensorsAsync,
} from '../files/safetensors.js';
import { writeFileAtomic } from './atomic_write.js';

/** Runs `read`; format errors keep their code and gain the path. */
async function naming<T>(path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof SafetensorsError)
      throw new SafetensorsError(error.code, `${path}: ${error.message}`);
    throw error;
  }
}

/** Reads and validates a .safetensors file; format errors keep their code and gain the path. */
export async function readSafetensorsFile(
  path: string,
  opts?: ReadSafetensorsOptions,
): Promise<SafetensorsContents<SafetensorsTensor>> {
  const bytes = await readFile(path);
  return naming(path, async () => readSafetensors(bytes, opts));
}

/** The header of a .safetensors file (names, dtypes, shapes), reading only the file's first bytes. */
export async function readSafetensorsFileHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    return await naming(path, async () => {
      const first8 = new Uint8Array(Math.min(8, size));
      await handle.read(first8, 0, first8.length, 0);
      const wanted = Math.min(safetensorsHeaderBytes(first8), size);
      const start = new Uint8Array(wanted);
      await handle.read(start, 0, wanted, 0);
      return readSafetensorsHeader(start, size);
    });
  } finally {
    await handle.close();
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
