// The header of a .safetensors file (names, dtypes, shapes), read without loading the tensors, so that
// `peft inspect` is instant on multi-gigabyte checkpoints. The layout is checked as the reference reader
// checks it (sizes match the shapes, the data region is tiled exactly); loading a model then decodes
// and validates the data with @peft/core's reader.
import { open } from 'node:fs/promises';
import { UsageError } from './errors.js';

/** Bytes per element of each safetensors dtype (sub-byte F4/F6 types are not listed: rejected). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  F8_E4M3FNUZ: 1,
  F8_E5M2FNUZ: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
  C64: 8,
};

const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Number of elements. */
  parameters: number;
}

export interface SafetensorsHeader {
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** File size in bytes. */
  size: number;
}

/** Reads and checks the header of `path`; a malformed file is a `UsageError` naming the file and the fault. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  function bad(why: string): never {
    throw new UsageError(`${path}: not a valid safetensors file: ${why}`);
  }
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size < 8) bad(`${size} bytes, too short for the 8-byte header length`);
    const prefix = Buffer.alloc(8);
    await handle.read(prefix, 0, 8, 0);
    const headerLength = prefix.readBigUInt64LE(0);
    if (headerLength > BigInt(MAX_HEADER_BYTES))
      bad(`header length ${headerLength} exceeds the 100 MB limit`);
    const length = Number(headerLength);
    if (8 + length > size) bad(`header length ${length} runs past the end of the file (${size} bytes)`);
    const headerBytes = Buffer.alloc(length);
    await handle.read(headerBytes, 0, length, 8);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
    } catch (error) {
      bad(`header is not valid UTF-8 JSON (${(error as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header))
      bad('header is not a JSON object');
    const dataLength = size - 8 - length;
    let metadata: Record<string, string> = {};
    const spans: { name: string; begin: number; end: number }[] = [];
    const tensors: TensorInfo[] = [];
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        const ok =
          typeof entry === 'object' &&
          entry !== null &&
          Object.values(entry).every((value) => typeof value === 'string');
        if (!ok) bad('__metadata__ must map names to strings');
        metadata = entry as Record<string, string>;
        continue;
      }
      const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
      if (typeof dtype !== 'string' || DTYPE_BYTES[dtype] === undefined)
        bad(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
        bad(`tensor "${name}" has invalid shape ${JSON.stringify(shape)}`);
      if (
        !Array.isArray(offsets) ||
        offsets.length !== 2 ||
        !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
        offsets[0] > offsets[1]
      ) {
        bad(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
      }
      const [begin, end] = offsets as [number, number];
      const parameters = (shape as number[]).reduce((a, b) => a * b, 1);
      const expected = parameters * DTYPE_BYTES[dtype as string]!;
      if (end - begin !== expected)
        bad(
          `tensor "${name}" holds ${end - begin} bytes, its shape [${shape}] of ${dtype} needs ${expected}`,
        );
      spans.push({ name, begin, end });
      tensors.push({ name, dtype: dtype as string, shape: shape as number[], parameters });
    }
    spans.sort((a, b) => a.begin - b.begin);
    let covered = 0;
    for (const span of spans) {
      if (span.begin !== covered)
        bad(`tensor "${span.name}" starts at byte ${span.begin} of the data, expected ${covered}`);
      covered = span.end;
    }
    if (covered !== dataLength)
      bad(`the tensors cover ${covered} bytes of data, the file holds ${dataLength} (truncated or padded)`);
    return { tensors, metadata, size };
  } finally {
    await handle.close();
  }
}
