import { readSafetensors, SafetensorsError, type SafetensorsTensor } from '@peft/core';
import type { CheckpointFile } from './checkpoint_files.js';

/** Files up to this size are read whole and validated in one piece by core's reader. */
const WHOLE_FILE_BYTES = 512 * 2 ** 20;
/** Larger files are decoded in groups of consecutive tensors of about this many bytes. */
const CHUNK_BYTES = 256 * 2 ** 20;

interface Entry {
  name: string;
  dtype: unknown;
  shape: unknown;
  begin: number;
  end: number;
}

function fail(where: string, message: string): never {
  throw new SafetensorsError('INVALID_HEADER', `${where}: safetensors: ${message}`);
}

function withLocation<T>(where: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof SafetensorsError)
      throw new SafetensorsError(error.code, `${where}: ${error.message}`);
    throw error;
  }
}

/**
 * Every tensor of a safetensors file. Files too large for one JavaScript buffer (4 GiB in Node 20)
 * are read in slices: each group of consecutive tensors becomes a small safetensors image that core's
 * reader decodes and validates, and the groups are checked to tile the file's data region.
 */
export async function readSafetensorsTensors(
  file: CheckpointFile,
  where: string,
  limits: { wholeFileBytes: number; chunkBytes: number } = {
    wholeFileBytes: WHOLE_FILE_BYTES,
    chunkBytes: CHUNK_BYTES,
  },
): Promise<Map<string, SafetensorsTensor>> {
  if (file.size <= limits.wholeFileBytes) {
    const bytes = await file.read(0, file.size);
    return withLocation(where, () => readSafetensors(bytes).tensors);
  }
  const prefix = await file.read(0, 8);
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const headerLength = view.getUint32(0, true);
  if (view.getUint32(4, true) !== 0 || headerLength > 100_000_000)
    fail(where, 'header length exceeds the 100 MB limit');
  const dataStart = 8 + headerLength;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await file.read(8, dataStart)));
  } catch (error) {
    fail(where, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail(where, 'header is not a JSON object');
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, Record<string, unknown>>)) {
    if (name === '__metadata__') continue;
    const offsets = info?.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(where, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    entries.push({ name, dtype: info.dtype, shape: info.shape, begin: offsets[0], end: offsets[1] });
  }
  entries.sort((a, b) => a.begin - b.begin);
  let covered = 0;
  for (const entry of entries) {
    if (entry.begin !== covered)
      fail(where, `tensor "${entry.name}" starts at ${entry.begin}, expected ${covered}`);
    covered = entry.end;
  }
  if (dataStart + covered !== file.size) {
    fail(where, `tensors end at byte ${dataStart + covered} but the file has ${file.size} bytes`);
  }

  const tensors = new Map<string, SafetensorsTensor>();
  for (let first = 0; first < entries.length; ) {
    let last = first;
    while (last + 1 < entries.length && entries[last + 1]!.end - entries[first]!.begin <= limits.chunkBytes)
      last++;
    const group = entries.slice(first, last + 1);
    const base = group[0]!.begin;
    const end = group[group.length - 1]!.end;
    const json = JSON.stringify(
      Object.fromEntries(
        group.map((e) => [
          e.name,
          { dtype: e.dtype, shape: e.shape, data_offsets: [e.begin - base, e.end - base] },
        ]),
      ),
    );
    const headerBytes = new TextEncoder().encode(json);
    const padded = Math.ceil(headerBytes.byteLength / 8) * 8;
    const image = new Uint8Array(8 + padded + (end - base));
    new DataView(image.buffer).setUint32(0, padded, true);
    image.set(headerBytes, 8);
    image.fill(0x20, 8 + headerBytes.byteLength, 8 + padded);
    image.set(await file.read(dataStart + base, dataStart + end), 8 + padded);
    for (const [name, tensor] of withLocation(where, () => readSafetensors(image).tensors))
      tensors.set(name, tensor);
    first = last + 1;
  }
  return tensors;
}
