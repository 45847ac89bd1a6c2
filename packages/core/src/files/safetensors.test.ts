import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  readSafetensors,
  readSafetensorsAsTensors,
  SafetensorsError,
  type SafetensorsErrorCode,
  type SafetensorsTensorInput,
  writeSafetensors,
  writeSafetensorsAsync,
} from './safetensors.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ascii = (text: string) => new TextEncoder().encode(text);

function concat(...parts: ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The 8-byte little-endian u64 header length. */
function u64le(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

const le = (Ctor: { from(values: number[]): ArrayBufferView }, values: number[]) => {
  const view = Ctor.from(values);
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
};

/** A file by hand, per the spec: u64 length, header padded with spaces to 8 bytes, data. */
function file(header: string, data: ArrayLike<number> = []): Uint8Array {
  const json = ascii(header);
  const padded = Math.ceil(json.length / 8) * 8;
  return concat(u64le(padded), json, new Uint8Array(padded - json.length).fill(0x20), data);
}

function expectError(run: () => unknown, code: SafetensorsErrorCode, text?: string | RegExp): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).code).toBe(code);
    if (text !== undefined) expect((error as Error).message).toMatch(text);
    return;
  }
  expect.fail(`expected a SafetensorsError ${code}`);
}

describe('reference format fixtures', () => {
  // Byte layouts from huggingface/safetensors' own serialization tests (safetensors/src/tensor.rs).
  const f32Data = le(Float32Array, [0, 1, 2, 3, 4, 5]);

  it('matches the reference bytes for one F32 tensor whose header needs no padding', () => {
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(header.length).toBe(64);
    const expected = concat(u64le(64), ascii(header), f32Data);
    const written = writeSafetensors({
      'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: [0, 1, 2, 3, 4, 5] },
    });
    expect(written).toEqual(expected);
    const { tensors, metadata } = readSafetensors(expected);
    expect(Object.keys(metadata)).toEqual([]);
    expect(tensors.get('attn.0')).toEqual({
      dtype: 'F32',
      shape: [1, 2, 3],
      data: Float32Array.from([0, 1, 2, 3, 4, 5]),
    });
  });

  it('pads the header with spaces to a multiple of 8, like the reference', () => {
    const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    const expected = concat(u64le(72), ascii(header), ascii('       '), f32Data);
    expect(
      writeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: [0, 1, 2, 3, 4, 5] } }),
    ).toEqual(expected);
    expect(readSafetensors(expected).tensors.get('attn0')?.shape).toEqual([1, 1, 2, 3]);
  });

  it('writes the reference bytes for no tensors, with and without metadata', () => {
    expect(writeSafetensors({})).toEqual(concat(u64le(8), ascii('{}      ')));
    const withMetadata = concat(u64le(40), ascii('{"__metadata__":{"framework":"pt"}}     '));
    expect(writeSafetensors({}, { framework: 'pt' })).toEqual(withMetadata);
    expect({ ...readSafetensors(withMetadata).metadata }).toEqual({ framework: 'pt' });
  });

  it('orders tensors by descending dtype, then name, as the reference prepare() does', () => {
    // What Python's save_file writes for a PEFT-like mix: __metadata__ first, then I64, F32, I32,
    // BF16, F16, BOOL, names in byte order within a dtype.
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"step":{"dtype":"I64","shape":[],"data_offsets":[0,8]},' +
      '"lora_A.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]},' +
      '"lora_B.weight":{"dtype":"F32","shape":[2,1],"data_offsets":[16,24]},' +
      '"ids":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},' +
      '"scale":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},' +
      '"half":{"dtype":"F16","shape":[2],"data_offsets":[30,34]},' +
      '"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[34,37]}}';
    const data = concat(
      [7, 0, 0, 0, 0, 0, 0, 0], // I64 7
      le(Float32Array, [0.5, -1]),
      le(Float32Array, [2, 3]),
      le(Int32Array, [-9]),
      [0x80, 0x3f], // BF16 1.0
      [0x00, 0x3c, 0x00, 0xc0], // F16 1.0, -2.0
      [1, 0, 1],
    );
    const expected = file(header, data);
    const written = writeSafetensors(
      new Map<string, SafetensorsTensorInput>([
        ['mask', { dtype: 'BOOL', shape: [3], data: [1, 0, 1] }],
        ['half', { dtype: 'F16', shape: [2], data: [1, -2] }],
        ['lora_B.weight', { dtype: 'F32', shape: [2, 1], data: [2, 3] }],
        ['scale', { dtype: 'BF16', shape: [1], data: [1] }],
        ['lora_A.weight', { dtype: 'F32', shape: [1, 2], data: [0.5, -1] }],
        ['ids', { dtype: 'I32', shape: [1], data: [-9] }],
        ['step', { dtype: 'I64', shape: [], data: [7] }],
      ]),
      { format: 'pt' },
    );
    expect(new TextDecoder().decode(written.subarray(8, 8 + header.length))).toBe(header);
    expect(written).toEqual(expected);
  });
});

describe('round trips', () => {
  it('keeps every dtype, value and shape', () => {
    const inputs: Record<string, SafetensorsTensorInput> = {
      f32: { dtype: 'F32', shape: [2, 3], data: [0, -1.5, 3.25, 1e-30, 3e38, -7] },
      f64: { dtype: 'F64', shape: [3], data: [0.5, -2, 1024] },
      f16: { dtype: 'F16', shape: [2, 2], data: [1, -0.0999755859375, 65504, 2 ** -24] },
      bf16: { dtype: 'BF16', shape: [4], data: [1, -3.140625, 2 ** 100, -(2 ** -130)] },
      i64: { dtype: 'I64', shape: [3], data: [-(2 ** 31), 2 ** 31 - 1, -1] },
      u64: { dtype: 'U64', shape: [1], data: [2 ** 31 - 1] },
      i32: { dtype: 'I32', shape: [2], data: [-(2 ** 31), 2 ** 31 - 1] },
      u32: { dtype: 'U32', shape: [2], data: [0, 2 ** 31 - 1] },
      i16: { dtype: 'I16', shape: [2], data: [-32768, 32767] },
      u16: { dtype: 'U16', shape: [2], data: [0, 65535] },
      i8: { dtype: 'I8', shape: [2], data: [-128, 127] },
      u8: { dtype: 'U8', shape: [3], data: [0, 200, 255] },
      bool: { dtype: 'BOOL', shape: [2, 2], data: [1, 0, 0, 1] },
    };
    const { tensors } = readSafetensors(writeSafetensors(inputs));
    expect([...tensors.keys()].sort()).toEqual(Object.keys(inputs).sort());
    for (const [name, input] of Object.entries(inputs)) {
      const got = tensors.get(name)!;
      expect(got.dtype).toBe(input.dtype);
      expect(got.shape).toEqual(input.shape);
      const float = /F/.test(input.dtype);
      expect(got.data).toBeInstanceOf(
        float ? Float32Array : input.dtype === 'BOOL' ? Uint8Array : Int32Array,
      );
      // Every value above is exactly representable in its dtype; floats come back as float32.
      expect(Array.from(got.data)).toEqual(Array.from(float ? Float32Array.from(input.data) : input.data));
    }
  });

  it('rounds F16 and BF16 within their precision and keeps inf, NaN and subnormals', () => {
    const values = [
      0.1,
      -1 / 3,
      1000.7,
      6e-8,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      2 ** -20,
    ];
    const { tensors } = readSafetensors(
      writeSafetensors({
        h: { dtype: 'F16', shape: [values.length], data: values },
        b: { dtype: 'BF16', shape: [values.length], data: values },
      }),
    );
    const half = Array.from(tensors.get('h')!.data);
    const brain = Array.from(tensors.get('b')!.data);
    for (const [i, v] of values.entries()) {
      if (Number.isNaN(v)) {
        expect(Number.isNaN(half[i])).toBe(true);
        expect(Number.isNaN(brain[i])).toBe(true);
      } else if (!Number.isFinite(v)) {
        expect(half[i]).toBe(v);
        expect(brain[i]).toBe(v);
      } else {
        // Half an ulp: 2^-11 relative for F16 normals (2^-25 absolute for subnormals), 2^-8 for BF16.
        expect(Math.abs(half[i]! - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25));
        expect(Math.abs(brain[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
      }
    }
    expect(half[3]).toBe(1 * 2 ** -24); // 6e-8 is the F16 subnormal 2^-24 (5.96e-8)
    expect(half[7]).toBe(2 ** -20);
  });

  it('keeps metadata, scalars and empty tensors', () => {
    const bytes = writeSafetensors(
      {
        scalar: { dtype: 'F32', shape: [], data: [42] },
        empty: { dtype: 'F32', shape: [0], data: [] },
        empty2d: { dtype: 'I64', shape: [3, 0], data: [] },
      },
      { format: 'pt', note: 'ünïcode "quoted"' },
    );
    const { tensors, metadata } = readSafetensors(bytes);
    expect({ ...metadata }).toEqual({ format: 'pt', note: 'ünïcode "quoted"' });
    expect(tensors.get('scalar')).toEqual({ dtype: 'F32', shape: [], data: Float32Array.from([42]) });
    expect(tensors.get('empty')).toEqual({ dtype: 'F32', shape: [0], data: new Float32Array(0) });
    expect(tensors.get('empty2d')).toEqual({ dtype: 'I64', shape: [3, 0], data: new Int32Array(0) });
  });

  it('writes identical bytes whatever the insertion order, and re-writes a read file identically', () => {
    const a = { dtype: 'F16', shape: [1], data: [2] } as const;
    const b = { dtype: 'F32', shape: [2], data: [1, 2] } as const;
    const first = writeSafetensors({ a, b }, { y: '1', x: '2' });
    expect(writeSafetensors({ b, a }, { x: '2', y: '1' })).toEqual(first);
    const read = readSafetensors(first);
    expect(writeSafetensors(read.tensors, read.metadata)).toEqual(first);
  });

  it('reads from an unaligned view and from a bare ArrayBuffer', () => {
    const bytes = writeSafetensors({
      h: { dtype: 'F16', shape: [2], data: [1.5, -2] },
      d: { dtype: 'F64', shape: [1], data: [0.25] },
    });
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const fromView = readSafetensors(shifted.subarray(1));
    expect(Array.from(fromView.tensors.get('h')!.data)).toEqual([1.5, -2]);
    expect(Array.from(fromView.tensors.get('d')!.data)).toEqual([0.25]);
    const fromBuffer = readSafetensors(bytes.slice().buffer);
    expect(Array.from(fromBuffer.tensors.get('h')!.data)).toEqual([1.5, -2]);
  });

  it('copies data out of the input buffer', () => {
    const bytes = writeSafetensors({ x: { dtype: 'F32', shape: [1], data: [1] } });
    const { tensors } = readSafetensors(bytes);
    bytes.fill(0, bytes.length - 4);
    expect(tensors.get('x')!.data[0]).toBe(1);
  });

  it('decodes only the included tensors but validates the whole file', () => {
    const bytes = writeSafetensors({
      keep: { dtype: 'F32', shape: [1], data: [1] },
      skip: { dtype: 'I32', shape: [1], data: [2] },
    });
    expect([...readSafetensors(bytes, { include: (name) => name === 'keep' }).tensors.keys()]).toEqual([
      'keep',
    ]);
    const broken = bytes.slice(0, bytes.length - 1);
    expectError(() => readSafetensors(broken, { include: () => false }), 'TRUNCATED');
  });

  it('round-trips tfjs tensors, storing float32 as F16 when asked', async () => {
    const weight = tf.tensor2d([
      [0.5, -0.25],
      [1.75, 3],
    ]);
    const ids = tf.tensor1d([3, -4], 'int32');
    const mask = tf.tensor1d([true, false], 'bool');
    const bytes = writeSafetensors({ weight, ids, mask }, { format: 'pt' }, { dtype: 'F16' });
    expect(await writeSafetensorsAsync({ weight, ids, mask }, { format: 'pt' }, { dtype: 'F16' })).toEqual(
      bytes,
    );
    const { tensors } = readSafetensorsAsTensors(bytes);
    expect(readSafetensors(bytes).tensors.get('weight')!.dtype).toBe('F16');
    const w = tensors.get('weight')!;
    expect([w.dtype, w.shape]).toEqual(['float32', [2, 2]]);
    expect(await w.array()).toEqual([
      [0.5, -0.25],
      [1.75, 3],
    ]);
    expect(tensors.get('ids')!.dtype).toBe('int32');
    expect(await tensors.get('ids')!.array()).toEqual([3, -4]);
    expect(tensors.get('mask')!.dtype).toBe('bool');
    expect(await tensors.get('mask')!.array()).toEqual([1, 0]);
    tf.dispose([weight, ids, mask, ...tensors.values()]);
  });
});

describe('malformed files', () => {
  const f32x2 = le(Float32Array, [1, 2]);

  it('rejects files too short for the header length or for the header', () => {
    expectError(() => readSafetensors(new Uint8Array(5)), 'TRUNCATED', /shorter than the 8-byte/);
    expectError(
      () => readSafetensors(concat(u64le(100), ascii('{"a":{}}'))),
      'TRUNCATED',
      /header length is 100/,
    );
  });

  it('rejects a header length over 100 MB before reading it', () => {
    expectError(() => readSafetensors(concat(u64le(100_000_001), ascii('{}      '))), 'HEADER_TOO_LARGE');
    expectError(
      () => readSafetensors(concat(u64le(2 ** 40), ascii('{}      '))),
      'HEADER_TOO_LARGE',
      /1099511627776/,
    );
  });

  it('rejects a header that is not UTF-8, not JSON, or not an object', () => {
    expectError(
      () => readSafetensors(concat(u64le(8), [0x7b, 0xff, 0xfe, 0x7d, 32, 32, 32, 32])),
      'INVALID_HEADER_UTF8',
    );
    expectError(() => readSafetensors(file('{"a": ')), 'INVALID_HEADER_JSON');
    expectError(() => readSafetensors(file('[]')), 'INVALID_HEADER', /not a JSON object/);
    expectError(() => readSafetensors(file('{"a":5}')), 'INVALID_HEADER', /"a"/);
  });

  it('rejects __metadata__ that is not a map of strings', () => {
    expectError(() => readSafetensors(file('{"__metadata__":{"format":1}}')), 'INVALID_METADATA', /"format"/);
    expectError(() => readSafetensors(file('{"__metadata__":["pt"]}')), 'INVALID_METADATA');
    expect(Object.keys(readSafetensors(file('{"__metadata__":null}')).metadata)).toEqual([]);
  });

  it('rejects duplicate tensor names and duplicate metadata keys, even when escaped differently', () => {
    const t = (begin: number, end: number) => `{"dtype":"F32","shape":[1],"data_offsets":[${begin},${end}]}`;
    expectError(
      () => readSafetensors(file(`{"a":${t(0, 4)},"a":${t(4, 8)}}`, f32x2)),
      'DUPLICATE_KEY',
      /tensor name "a"/,
    );
    expectError(
      () => readSafetensors(file(`{"a":${t(0, 4)},"\\u0061":${t(4, 8)}}`, f32x2)),
      'DUPLICATE_KEY',
      /"a"/,
    );
    expectError(
      () => readSafetensors(file('{"__metadata__":{"k":"1","k":"2"}}')),
      'DUPLICATE_KEY',
      /__metadata__/,
    );
    // Equal keys in different objects are fine.
    expect(
      readSafetensors(file(`{"__metadata__":{"a":"x"},"a":${t(0, 8).replace('[1]', '[2]')}}`, f32x2)).tensors
        .size,
    ).toBe(1);
  });

  it('rejects __proto__, constructor and prototype as names', () => {
    const t = '{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
    expectError(() => readSafetensors(file(`{"__proto__":${t}}`, f32x2)), 'FORBIDDEN_KEY', /__proto__/);
    expectError(() => readSafetensors(file(`{"constructor":${t}}`, f32x2)), 'FORBIDDEN_KEY', /constructor/);
    expectError(
      () => readSafetensors(file('{"__metadata__":{"prototype":"x"}}')),
      'FORBIDDEN_KEY',
      /prototype/,
    );
    expectError(
      () => writeSafetensors(new Map([['__proto__', { dtype: 'F32', shape: [0], data: [] }]])),
      'FORBIDDEN_KEY',
    );
    expect(Object.prototype).not.toHaveProperty('dtype');
  });

  it('rejects unknown dtypes and cannot decode undecodable ones', () => {
    expectError(
      () => readSafetensors(file('{"x":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}', f32x2)),
      'UNKNOWN_DTYPE',
      /"x".*"F17"/,
    );
    expectError(
      () => readSafetensors(file('{"x":{"dtype":"toString","shape":[0],"data_offsets":[0,0]}}')),
      'UNKNOWN_DTYPE',
    );
    expectError(
      () => writeSafetensors({ x: { dtype: 'Q4' as never, shape: [1], data: [1] } }),
      'UNKNOWN_DTYPE',
    );
    const fp8 = file(
      '{"s":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},"w":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}',
      [1, 2, 0, 0x3c],
    );
    expectError(() => readSafetensors(fp8), 'UNSUPPORTED_DTYPE', /"s".*F8_E4M3/);
    expect(readSafetensors(fp8, { include: (name) => name !== 's' }).tensors.get('w')!.data[0]).toBe(1);
  });

  it('rejects negative, fractional and non-numeric dimensions', () => {
    for (const shape of ['[-1]', '[1.5]', '["2"]', 'null']) {
      expectError(
        () => readSafetensors(file(`{"x":{"dtype":"F32","shape":${shape},"data_offsets":[0,0]}}`)),
        'INVALID_SHAPE',
        /"x"/,
      );
    }
    expectError(() => writeSafetensors({ x: { dtype: 'F32', shape: [-2], data: [] } }), 'INVALID_SHAPE');
  });

  it('rejects a byte size that does not match dtype x shape', () => {
    expectError(
      () => readSafetensors(file('{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32x2)),
      'SIZE_MISMATCH',
      /"x" is F32 \[3\] \(12 bytes\).*8 bytes/,
    );
    expectError(
      () => writeSafetensors({ x: { dtype: 'F32', shape: [3], data: [1, 2] } }),
      'SIZE_MISMATCH',
      /"x"/,
    );
  });

  it('rejects overlapping tensors, gaps, reversed and malformed offsets, and uncovered bytes', () => {
    const t = (name: string, begin: number, end: number, n = 2) =>
      `"${name}":{"dtype":"F32","shape":[${n}],"data_offsets":[${begin},${end}]}`;
    const twelve = le(Float32Array, [1, 2, 3]);
    expectError(
      () => readSafetensors(file(`{${t('a', 0, 8)},${t('b', 4, 12)}}`, twelve)),
      'OVERLAPPING',
      /"b".*\[4, 12\]/,
    );
    expectError(() => readSafetensors(file(`{${t('a', 0, 8)},${t('b', 0, 8)}}`, f32x2)), 'OVERLAPPING');
    expectError(
      () => readSafetensors(file(`{${t('a', 0, 4, 1)},${t('b', 8, 12, 1)}}`, twelve)),
      'INVALID_OFFSETS',
      /gap.*"b" begins at 8.*ends at 4/,
    );
    expectError(() => readSafetensors(file(`{${t('a', 4, 12)}}`, twelve)), 'INVALID_OFFSETS', /gap/);
    expectError(
      () => readSafetensors(file(`{${t('a', 8, 0)}}`, f32x2)),
      'INVALID_OFFSETS',
      /end before begin/,
    );
    expectError(
      () => readSafetensors(file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', f32x2)),
      'INVALID_OFFSETS',
    );
    expectError(
      () => readSafetensors(file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}', f32x2)),
      'INVALID_OFFSETS',
    );
    expectError(
      () => readSafetensors(file(`{${t('a', 0, 8)}}`, twelve)),
      'INVALID_OFFSETS',
      /holds 12 bytes but the tensors cover only 8/,
    );
  });

  it('rejects offsets past the end of the data (a truncated file), naming the tensor', () => {
    const good = writeSafetensors({
      a: { dtype: 'F32', shape: [2], data: [1, 2] },
      b: { dtype: 'F32', shape: [4], data: [1, 2, 3, 4] },
    });
    expectError(
      () => readSafetensors(good.subarray(0, good.length - 3)),
      'TRUNCATED',
      /tensor "\w" ends at byte 24.*holds only 21/,
    );
    expectError(
      () => readSafetensors(file('{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}', f32x2)),
      'TRUNCATED',
      /"a"/,
    );
  });

  it('rejects I64 values that do not fit int32, naming the tensor', () => {
    const bytes = writeSafetensors({ big: { dtype: 'I64', shape: [2], data: [1, 2 ** 40] } });
    expectError(() => readSafetensors(bytes), 'VALUE_OUT_OF_RANGE', /"big".*1099511627776 at index 1/);
    const negative = writeSafetensors({ n: { dtype: 'I64', shape: [1], data: [-(2 ** 31) - 1] } });
    expectError(() => readSafetensors(negative), 'VALUE_OUT_OF_RANGE', /-2147483649/);
    expectError(
      () => readSafetensors(writeSafetensors({ u: { dtype: 'U64', shape: [1], data: [2 ** 31] } })),
      'VALUE_OUT_OF_RANGE',
    );
    expectError(
      () => readSafetensors(writeSafetensors({ u: { dtype: 'U32', shape: [1], data: [2 ** 31] } })),
      'VALUE_OUT_OF_RANGE',
    );
  });

  it('refuses to write integers outside their dtype', () => {
    expectError(
      () => writeSafetensors({ x: { dtype: 'U8', shape: [1], data: [256] } }),
      'VALUE_OUT_OF_RANGE',
      /"x" value 256/,
    );
    expectError(
      () => writeSafetensors({ x: { dtype: 'I32', shape: [1], data: [0.5] } }),
      'VALUE_OUT_OF_RANGE',
    );
    expectError(
      () => writeSafetensors({ x: { dtype: 'BOOL', shape: [1], data: [1] } }, { k: 5 as never }),
      'INVALID_METADATA',
    );
  });
});
