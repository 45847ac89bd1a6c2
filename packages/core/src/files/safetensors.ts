// safetensors read/write, following the reference implementation (huggingface/safetensors,
// safetensors/src/tensor.rs): an 8-byte little-endian header length N, N bytes of JSON header padded
// with spaces to a multiple of 8, then the tensors' bytes, which must cover the data region
// contiguously. Files come from untrusted places (the Hub), so every field is checked before use and
// tensor names are only ever used as Map keys.
import * as tf from '@tensorflow/tfjs-core';
import { compareCodePoints } from './code_point_order.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from './float16.js';
import { findDuplicateJsonKey } from './json_duplicate_keys.js';

/**
 * Bytes per element of the dtypes we decode and encode, listed in the reference's `Dtype` enum order
 * (ascending), which decides the order in which the writer lays tensors out.
 */
const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
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
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;
const SUPPORTED_DTYPES = Object.keys(DTYPE_BYTES) as SafetensorsDtype[];

/**
 * Dtypes the reference knows but we cannot decode. Their sizes still let us validate a file's layout,
 * so a checkpoint holding, say, FP8 scales stays readable with `include` skipping those tensors.
 * (The sub-byte F4/F6 types have no whole-byte size and are rejected outright.)
 */
const UNDECODABLE_DTYPE_BYTES: ReadonlyMap<string, number> = new Map([
  ['F8_E5M2', 1],
  ['F8_E4M3', 1],
  ['F8_E8M0', 1],
  ['F8_E4M3FNUZ', 1],
  ['F8_E5M2FNUZ', 1],
  ['C64', 8],
]);

/** Same cap as the reference: a header above 100 MB is refused before anything is decoded. */
const MAX_HEADER_BYTES = 100_000_000;
/** Names that would be dangerous if ever used as plain-object keys downstream. */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const METADATA_KEY = '__metadata__';
// Typed-array views read and write the host's byte order; safetensors is little-endian.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export type SafetensorsErrorCode =
  | 'TRUNCATED'
  | 'HEADER_TOO_LARGE'
  | 'INVALID_HEADER_UTF8'
  | 'INVALID_HEADER_JSON'
  | 'INVALID_HEADER'
  | 'INVALID_METADATA'
  | 'DUPLICATE_KEY'
  | 'FORBIDDEN_KEY'
  | 'UNKNOWN_DTYPE'
  | 'UNSUPPORTED_DTYPE'
  | 'INVALID_SHAPE'
  | 'INVALID_OFFSETS'
  | 'OVERLAPPING'
  | 'SIZE_MISMATCH'
  | 'VALUE_OUT_OF_RANGE'
  | 'UNSUPPORTED_PLATFORM';

/** Every failure to read or write a safetensors file; `code` says which check failed. */
export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Decoded data: float dtypes as float32, integer dtypes as int32, BOOL as 0/1 bytes (what tfjs holds). */
export type TensorData = Float32Array | Int32Array | Uint8Array;

/** A tensor read from a file: `dtype` is the dtype stored in the file, `data` the decoded values. */
export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

/** A tensor to write: `data` holds `prod(shape)` values, stored as `dtype`. */
export interface SafetensorsTensorInput {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: ArrayLike<number>;
}

export interface ReadSafetensorsOptions {
  /** Decode only the tensors for which this returns true; the whole file is validated regardless. */
  include?: (name: string) => boolean;
}

export interface SafetensorsContents<T> {
  tensors: Map<string, T>;
  /** The header's `__metadata__` (for PEFT adapters `{ format: 'pt' }`); empty when absent. */
  metadata: Record<string, string>;
}

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function fail(code: SafetensorsErrorCode, message: string): never {
  throw new SafetensorsError(code, message);
}

function assertLittleEndianHost(): void {
  if (!LITTLE_ENDIAN_HOST) fail('UNSUPPORTED_PLATFORM', 'safetensors: big-endian hosts are not supported');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function checkName(name: string, what: string): void {
  if (FORBIDDEN_KEYS.has(name)) fail('FORBIDDEN_KEY', `safetensors: forbidden ${what} "${name}"`);
}

function elementCount(shape: readonly number[], name: string): number {
  let count = 1;
  for (const dim of shape) {
    if (!isNonNegativeInteger(dim)) {
      fail(
        'INVALID_SHAPE',
        `safetensors: tensor "${name}" has shape ${JSON.stringify(shape)}; dimensions must be non-negative integers`,
      );
    }
    count *= dim;
  }
  if (!Number.isSafeInteger(count)) {
    fail('INVALID_SHAPE', `safetensors: tensor "${name}" shape ${JSON.stringify(shape)} is too large`);
  }
  return count;
}

function dtypeBytes(dtype: string, name: string): number {
  if (Object.hasOwn(DTYPE_BYTES, dtype)) return DTYPE_BYTES[dtype as SafetensorsDtype];
  const bytes = UNDECODABLE_DTYPE_BYTES.get(dtype);
  if (bytes !== undefined) return bytes;
  if (/^F[46]_/.test(dtype) || dtype === 'F4') {
    fail(
      'UNSUPPORTED_DTYPE',
      `safetensors: tensor "${name}" has sub-byte dtype "${dtype}", which is not supported`,
    );
  }
  return fail('UNKNOWN_DTYPE', `safetensors: tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
}

/**
 * A plain Uint8Array over the input. Node's Buffer is a Uint8Array whose `slice` does not copy, so a
 * Buffer is re-viewed too: the decoders rely on `slice` returning a fresh, aligned copy.
 */
function toBytes(buffer: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(buffer)
    ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    : new Uint8Array(buffer);
}

/**
 * Parses and validates the header; returns the entries sorted by offset and where the data starts.
 * `bytes` holds at least the 8-byte length and the header; `fileLength` is the whole file's size
 * (the data region is checked against it).
 */
function readHeader(
  bytes: Uint8Array,
  fileLength = bytes.byteLength,
): {
  entries: HeaderEntry[];
  metadata: Record<string, string>;
  dataStart: number;
} {
  if (bytes.byteLength < 8) {
    fail(
      'TRUNCATED',
      `safetensors: file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`,
    );
  }
  const prefix = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const low = prefix.getUint32(0, true);
  const high = prefix.getUint32(4, true);
  if (high !== 0 || low > MAX_HEADER_BYTES) {
    const length = BigInt(high) * 2n ** 32n + BigInt(low);
    fail(
      'HEADER_TOO_LARGE',
      `safetensors: header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const headerLength = low;
  if (8 + headerLength > Math.min(bytes.byteLength, fileLength)) {
    fail(
      'TRUNCATED',
      `safetensors: header length is ${headerLength} bytes but only ${Math.min(bytes.byteLength, fileLength) - 8} bytes follow`,
    );
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + headerLength),
    );
  } catch {
    return fail('INVALID_HEADER_UTF8', 'safetensors: header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    return fail('INVALID_HEADER_JSON', `safetensors: header is not valid JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(header)) fail('INVALID_HEADER', 'safetensors: header is not a JSON object');
  const duplicate = findDuplicateJsonKey(text);
  if (duplicate) {
    const where =
      duplicate.path.length === 0 ? 'tensor name' : `key in ${JSON.stringify(duplicate.path.join('.'))}`;
    fail('DUPLICATE_KEY', `safetensors: duplicate ${where} ${JSON.stringify(duplicate.key)} in header`);
  }

  const metadata: Record<string, string> = Object.create(null);
  const entries: HeaderEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    checkName(name, 'tensor name');
    if (name === METADATA_KEY) {
      if (info === null) continue; // the reference reads `null` as "no metadata"
      if (!isPlainObject(info)) {
        fail('INVALID_METADATA', 'safetensors: __metadata__ must be an object of strings');
      }
      for (const [key, value] of Object.entries(info)) {
        checkName(key, '__metadata__ key');
        if (typeof value !== 'string') {
          fail(
            'INVALID_METADATA',
            `safetensors: __metadata__ value for ${JSON.stringify(key)} must be a string, got ${JSON.stringify(value)}`,
          );
        }
        metadata[key] = value;
      }
      continue;
    }
    if (!isPlainObject(info)) {
      fail('INVALID_HEADER', `safetensors: header entry for tensor "${name}" is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string') fail('UNKNOWN_DTYPE', `safetensors: tensor "${name}" has no string dtype`);
    if (!Array.isArray(shape)) fail('INVALID_SHAPE', `safetensors: tensor "${name}" has no shape array`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
      fail(
        'INVALID_OFFSETS',
        `safetensors: tensor "${name}" data_offsets ${JSON.stringify(offsets)} must be two non-negative integers`,
      );
    }
    const byteSize = elementCount(shape, name) * dtypeBytes(dtype, name);
    const [begin, end] = offsets as [number, number];
    if (end < begin) {
      fail(
        'INVALID_OFFSETS',
        `safetensors: tensor "${name}" data_offsets [${begin}, ${end}] end before begin`,
      );
    }
    if (end - begin !== byteSize) {
      fail(
        'SIZE_MISMATCH',
        `safetensors: tensor "${name}" is ${dtype} ${JSON.stringify(shape)} (${byteSize} bytes) but data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }

  // Like the reference: tensors, in offset order, must tile the data region exactly.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataStart = 8 + headerLength;
  const dataLength = fileLength - dataStart;
  let covered = 0;
  for (const { name, begin, end } of entries) {
    if (begin < covered) {
      fail(
        'OVERLAPPING',
        `safetensors: tensor "${name}" data_offsets [${begin}, ${end}] overlap the previous tensor, which ends at ${covered}`,
      );
    }
    if (begin > covered) {
      fail(
        'INVALID_OFFSETS',
        `safetensors: gap in the data region: tensor "${name}" begins at ${begin}, the previous tensor ends at ${covered}`,
      );
    }
    if (end > dataLength) {
      fail(
        'TRUNCATED',
        `safetensors: tensor "${name}" ends at byte ${end} of the data region, which holds only ${dataLength} bytes (truncated file?)`,
      );
    }
    covered = end;
  }
  if (covered !== dataLength) {
    fail(
      'INVALID_OFFSETS',
      `safetensors: the data region holds ${dataLength} bytes but the tensors cover only ${covered}`,
    );
  }
  return { entries, metadata, dataStart };
}

/** A view of `bytes[begin, end)` as `Ctor`, copying only when the position is not aligned for it. */
function viewAs<T>(
  Ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number },
  bytes: Uint8Array,
  begin: number,
  end: number,
): T {
  const length = (end - begin) / Ctor.BYTES_PER_ELEMENT;
  const offset = bytes.byteOffset + begin;
  if (offset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer, offset, length);
  return new Ctor(bytes.slice(begin, end).buffer, 0, length);
}

/** Checks that 64-bit integers (as pairs of 32-bit words) fit int32, and returns their low words. */
function int64ToInt32(words: Int32Array, signed: boolean, name: string, dtype: string): Int32Array {
  const out = new Int32Array(words.length / 2);
  for (let i = 0; i < out.length; i++) {
    const low = words[2 * i]!;
    const high = words[2 * i + 1]!;
    // Fits int32 exactly when the high word is the sign extension of the low word.
    if (high !== (signed ? low >> 31 : 0) || (!signed && low < 0)) {
      const value = signed
        ? (BigInt(high) << 32n) | BigInt(low >>> 0)
        : (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
      fail(
        'VALUE_OUT_OF_RANGE',
        `safetensors: tensor "${name}" (${dtype}) holds ${value} at index ${i}, which does not fit int32`,
      );
    }
    out[i] = low;
  }
  return out;
}

function decode(bytes: Uint8Array, begin: number, end: number, entry: HeaderEntry): TensorData {
  const { name, dtype } = entry;
  switch (dtype as SafetensorsDtype) {
    case 'F32':
      return new Float32Array(bytes.slice(begin, end).buffer);
    case 'F16':
      return float16BitsToFloat32(viewAs(Uint16Array, bytes, begin, end));
    case 'BF16':
      return bfloat16BitsToFloat32(viewAs(Uint16Array, bytes, begin, end));
    case 'F64':
      return Float32Array.from(viewAs(Float64Array, bytes, begin, end));
    case 'I32':
      return new Int32Array(bytes.slice(begin, end).buffer);
    case 'I64':
    case 'U64':
      return int64ToInt32(viewAs(Int32Array, bytes, begin, end), dtype === 'I64', name, dtype);
    case 'U32': {
      const values = viewAs(Uint32Array, bytes, begin, end);
      const index = values.findIndex((v) => v > 0x7fffffff);
      if (index >= 0) {
        fail(
          'VALUE_OUT_OF_RANGE',
          `safetensors: tensor "${name}" (U32) holds ${values[index]} at index ${index}, which does not fit int32`,
        );
      }
      return Int32Array.from(values);
    }
    case 'I16':
      return Int32Array.from(viewAs(Int16Array, bytes, begin, end));
    case 'U16':
      return Int32Array.from(viewAs(Uint16Array, bytes, begin, end));
    case 'I8':
      return Int32Array.from(viewAs(Int8Array, bytes, begin, end));
    case 'U8':
      return Int32Array.from(bytes.subarray(begin, end));
    case 'BOOL':
      return bytes.slice(begin, end);
    default:
      return fail(
        'UNSUPPORTED_DTYPE',
        `safetensors: tensor "${name}" has dtype ${dtype}, which cannot be decoded (supported: ${SUPPORTED_DTYPES.join(', ')})`,
      );
  }
}

/**
 * Reads a safetensors file from memory. Every tensor's values are copied out, so the input buffer can
 * be dropped afterwards. F16/BF16/F64 become float32, integer dtypes int32 (a value outside int32
 * is an error naming the tensor), BOOL stays 0/1 bytes.
 */
export function readSafetensors(
  bytes: ArrayBuffer | ArrayBufferView,
  opts: ReadSafetensorsOptions = {},
): SafetensorsContents<SafetensorsTensor> {
  assertLittleEndianHost();
  const buffer = toBytes(bytes);
  const { entries, metadata, dataStart } = readHeader(buffer);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const entry of entries) {
    if (opts.include && !opts.include(entry.name)) continue;
    const data = decode(buffer, dataStart + entry.begin, dataStart + entry.end, entry);
    tensors.set(entry.name, { dtype: entry.dtype as SafetensorsDtype, shape: entry.shape, data });
  }
  return { tensors, metadata };
}

/** A tensor's description in the header. */
export interface SafetensorsTensorInfo {
  name: string;
  /** As stored in the file (including dtypes that are validated but not decoded, e.g. F8_E4M3). */
  dtype: string;
  shape: number[];
}

/** What the header of a file says, without its data. */
export interface SafetensorsHeader {
  /** In the order of their data in the file. */
  tensors: SafetensorsTensorInfo[];
  metadata: Record<string, string>;
  /** Bytes before the data region: the 8-byte length plus the header. */
  headerBytes: number;
}

/**
 * Bytes of a file's start (the 8-byte length plus the header) that `readSafetensorsHeader` needs,
 * from its first 8 bytes; the header length limit is checked.
 */
export function safetensorsHeaderBytes(first8: ArrayBuffer | ArrayBufferView): number {
  const bytes = toBytes(first8);
  if (bytes.byteLength < 8) {
    fail(
      'TRUNCATED',
      `safetensors: file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const low = view.getUint32(0, true);
  const high = view.getUint32(4, true);
  if (high !== 0 || low > MAX_HEADER_BYTES) {
    const length = BigInt(high) * 2n ** 32n + BigInt(low);
    fail(
      'HEADER_TOO_LARGE',
      `safetensors: header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  return 8 + low;
}

/**
 * Names, dtypes and shapes of a file's tensors from its start alone (e.g. for inspecting a
 * multi-gigabyte checkpoint), validated as a full read validates the layout: `bytes` holds at least
 * `safetensorsHeaderBytes` bytes, `fileLength` is the whole file's size.
 */
export function readSafetensorsHeader(
  bytes: ArrayBuffer | ArrayBufferView,
  fileLength = bytes.byteLength,
): SafetensorsHeader {
  const { entries, metadata, dataStart } = readHeader(toBytes(bytes), fileLength);
  return {
    tensors: entries.map(({ name, dtype, shape }) => ({ name, dtype, shape })),
    metadata,
    headerBytes: dataStart,
  };
}

/** `readSafetensors`, returning tfjs tensors on the current backend (the caller disposes them). */
export function readSafetensorsAsTensors(
  bytes: ArrayBuffer | ArrayBufferView,
  opts: ReadSafetensorsOptions = {},
): SafetensorsContents<tf.Tensor> {
  const { tensors, metadata } = readSafetensors(bytes, opts);
  const out = new Map<string, tf.Tensor>();
  for (const [name, { shape, data }] of tensors) {
    const dtype = data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : 'bool';
    out.set(name, tf.tensor(data, shape, dtype));
  }
  return { tensors: out, metadata };
}

export interface WriteSafetensorsOptions {
  /** Storage dtype for float32 tfjs tensors (default F32); F16/BF16 round to nearest even. */
  dtype?: 'F32' | 'F16' | 'BF16';
}

export type SafetensorsWritable = tf.Tensor | SafetensorsTensorInput;
export type SafetensorsWritableMap =
  | Record<string, SafetensorsWritable>
  | ReadonlyMap<string, SafetensorsWritable>;

const INTEGER_RANGES: Partial<Record<SafetensorsDtype, [number, number]>> = {
  I8: [-128, 127],
  U8: [0, 255],
  I16: [-32768, 32767],
  U16: [0, 65535],
  I32: [-(2 ** 31), 2 ** 31 - 1],
  U32: [0, 2 ** 32 - 1],
  I64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  U64: [0, Number.MAX_SAFE_INTEGER],
};

function asFloat32(data: ArrayLike<number>): Float32Array {
  return data instanceof Float32Array ? data : Float32Array.from(data);
}

function checkIntegers(data: ArrayLike<number>, dtype: SafetensorsDtype, name: string): void {
  const [min, max] = INTEGER_RANGES[dtype]!;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isInteger(v) || v < min || v > max) {
      fail(
        'VALUE_OUT_OF_RANGE',
        `safetensors: tensor "${name}" value ${v} at index ${i} is not a ${dtype} integer`,
      );
    }
  }
}

function encode(data: ArrayLike<number>, dtype: SafetensorsDtype, name: string): ArrayBufferView {
  if (Object.hasOwn(INTEGER_RANGES, dtype)) checkIntegers(data, dtype, name);
  switch (dtype) {
    case 'F32':
      return asFloat32(data);
    case 'F16':
      return float32ToFloat16Bits(asFloat32(data));
    case 'BF16':
      return float32ToBfloat16Bits(asFloat32(data));
    case 'F64':
      return Float64Array.from(data);
    case 'I64':
      return BigInt64Array.from(Array.from(data, BigInt));
    case 'U64':
      return BigUint64Array.from(Array.from(data, BigInt));
    case 'I32':
      return data instanceof Int32Array ? data : Int32Array.from(data);
    case 'U32':
      return Uint32Array.from(data);
    case 'I16':
      return Int16Array.from(data);
    case 'U16':
      return Uint16Array.from(data);
    case 'I8':
      return Int8Array.from(data);
    case 'U8':
      return Uint8Array.from(data);
    case 'BOOL':
      return Uint8Array.from(data, (v) => (v ? 1 : 0));
    default:
      return fail(
        'UNKNOWN_DTYPE',
        `safetensors: tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`,
      );
  }
}

interface PreparedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
  bytes: ArrayBufferView;
}

function prepareTensor(
  name: string,
  input: SafetensorsWritable,
  opts: WriteSafetensorsOptions,
  values?: ArrayLike<number>,
): PreparedTensor {
  checkName(name, 'tensor name');
  if (name === METADATA_KEY) fail('FORBIDDEN_KEY', `safetensors: "${METADATA_KEY}" cannot be a tensor name`);
  let dtype: SafetensorsDtype;
  let data: ArrayLike<number>;
  if (input instanceof tf.Tensor) {
    if (input.dtype === 'float32') dtype = opts.dtype ?? 'F32';
    else if (input.dtype === 'int32') dtype = 'I32';
    else if (input.dtype === 'bool') dtype = 'BOOL';
    else
      return fail(
        'UNSUPPORTED_DTYPE',
        `safetensors: tensor "${name}" has tfjs dtype ${input.dtype}, which cannot be stored`,
      );
    data = values ?? (input.dataSync() as ArrayLike<number>);
  } else {
    if (!SUPPORTED_DTYPES.includes(input.dtype)) {
      fail('UNKNOWN_DTYPE', `safetensors: tensor "${name}" has unknown dtype ${JSON.stringify(input.dtype)}`);
    }
    dtype = input.dtype;
    data = input.data;
  }
  const shape = input.shape;
  const count = elementCount(shape, name);
  if (count !== data.length) {
    fail(
      'SIZE_MISMATCH',
      `safetensors: tensor "${name}" has shape ${JSON.stringify(shape)} (${count} values) but ${data.length} values`,
    );
  }
  return { name, dtype, shape, bytes: encode(data, dtype, name) };
}

function entriesOf(tensors: SafetensorsWritableMap): [string, SafetensorsWritable][] {
  return tensors instanceof Map ? [...tensors] : Object.entries(tensors);
}

function serialize(prepared: PreparedTensor[], metadata: Record<string, string> | undefined): Uint8Array {
  // The reference's `prepare`: descending dtype (enum order, hence alignment) then name, so every
  // tensor starts aligned to its element size once the header is padded to a multiple of 8.
  const rank = (dtype: SafetensorsDtype) => SUPPORTED_DTYPES.indexOf(dtype);
  prepared.sort((a, b) => rank(b.dtype) - rank(a.dtype) || compareCodePoints(a.name, b.name));

  const fields: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.entries(metadata).sort(([a], [b]) => compareCodePoints(a, b));
    for (const [key, value] of pairs) {
      checkName(key, '__metadata__ key');
      if (typeof value !== 'string') {
        fail(
          'INVALID_METADATA',
          `safetensors: __metadata__ value for ${JSON.stringify(key)} must be a string`,
        );
      }
    }
    // JSON.stringify escapes strings exactly as serde_json does (", \, control characters only).
    fields.push(
      `"${METADATA_KEY}":{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`,
    );
  }
  let offset = 0;
  for (const { name, dtype, shape, bytes } of prepared) {
    const end = offset + bytes.byteLength;
    fields.push(
      `${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLength % 2 ** 32, true);
  view.setUint32(4, Math.floor(headerLength / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLength); // pad with spaces, like the reference
  let position = 8 + headerLength;
  for (const { bytes } of prepared) {
    out.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), position);
    position += bytes.byteLength;
  }
  return out;
}

/**
 * Serializes tensors to safetensors bytes, laid out as the reference library lays them out (so the
 * same tensors give byte-identical files). `metadata` goes to `__metadata__` (PEFT writes
 * `{ format: 'pt' }`), its keys sorted for determinism. tfjs tensors are read with `dataSync()`; on
 * GPU backends use `writeSafetensorsAsync`.
 */
export function writeSafetensors(
  tensors: SafetensorsWritableMap,
  metadata?: Record<string, string>,
  opts: WriteSafetensorsOptions = {},
): Uint8Array {
  assertLittleEndianHost();
  const prepared = entriesOf(tensors).map(([name, input]) => prepareTensor(name, input, opts));
  return serialize(prepared, metadata);
}

/** `writeSafetensors`, reading tfjs tensors with `await data()` so that it works on every backend. */
export async function writeSafetensorsAsync(
  tensors: SafetensorsWritableMap,
  metadata?: Record<string, string>,
  opts: WriteSafetensorsOptions = {},
): Promise<Uint8Array> {
  assertLittleEndianHost();
  const entries = entriesOf(tensors);
  const values = await Promise.all(
    entries.map(([, input]) =>
      input instanceof tf.Tensor ? (input.data() as Promise<ArrayLike<number>>) : undefined,
    ),
  );
  const prepared = entries.map(([name, input], i) => prepareTensor(name, input, opts, values[i]));
  return serialize(prepared, metadata);
}
