import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from './float16.js';

const allBits = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
const isNaNBits = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
const f16 = (...values: number[]) => Array.from(float32ToFloat16Bits(Float32Array.from(values)));
const bf16 = (...values: number[]) => Array.from(float32ToBfloat16Bits(Float32Array.from(values)));

/** Independent reference: the nearest half to a positive float by search, ties to the even pattern. */
function nearestHalfBits(x: number, decoded: Float32Array): number {
  let lo = 0;
  let hi = 0x7bff; // largest finite half
  if (x >= decoded[hi]!) {
    // Rounding past 65504 goes to the next value (65536, i.e. Inf's slot) when at least halfway there.
    return x - 65504 >= 16 ? 0x7c00 : 0x7bff;
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (decoded[mid]! <= x) lo = mid;
    else hi = mid;
  }
  const below = x - decoded[lo]!;
  const above = decoded[hi]! - x;
  if (below < above) return lo;
  if (above < below) return hi;
  return lo % 2 === 0 ? lo : hi;
}

describe('F16', () => {
  it('decodes normals, subnormals, zeros, infinities and NaN exactly', () => {
    const values = float16BitsToFloat32(
      Uint16Array.from([
        0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x3555, 0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00,
        0xfd01,
      ]),
    );
    expect(Array.from(values.subarray(0, 7))).toEqual([
      1,
      -2,
      65504,
      2 ** -14,
      2 ** -24,
      1023 * 2 ** -24,
      0.333251953125,
    ]);
    expect(Object.is(values[7], 0)).toBe(true);
    expect(Object.is(values[8], -0)).toBe(true);
    expect(values[9]).toBe(Number.POSITIVE_INFINITY);
    expect(values[10]).toBe(Number.NEGATIVE_INFINITY);
    expect(Number.isNaN(values[11])).toBe(true);
    expect(Number.isNaN(values[12])).toBe(true);
  });

  it('encodes every half value back to its own bit pattern (NaN stays NaN)', () => {
    const decoded = float16BitsToFloat32(allBits);
    const encoded = float32ToFloat16Bits(decoded);
    for (let h = 0; h < 0x10000; h++) {
      if (isNaNBits(h)) expect(isNaNBits(encoded[h]!)).toBe(true);
      else if (encoded[h] !== h)
        expect.fail(`0x${h.toString(16)} re-encoded as 0x${encoded[h]!.toString(16)}`);
    }
  });

  it('rounds to nearest, ties to even, in the normal and subnormal ranges', () => {
    expect(f16(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20)).toEqual([0x3c00, 0x3c02, 0x3c01]);
    expect(f16(2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -25, 5 * 2 ** -25, 2 ** -26, -(2 ** -25))).toEqual([
      0, 1, 2, 2, 0, 0x8000,
    ]);
    // Rounding up out of the subnormals gives the smallest normal.
    expect(f16(1023.5 * 2 ** -24, 1023.75 * 2 ** -24)).toEqual([0x0400, 0x0400]);
  });

  it('overflows to infinity only from halfway past the largest half', () => {
    expect(f16(65504, 65519, 65520, 1e10, -1e10, Number.POSITIVE_INFINITY)).toEqual([
      0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x7c00,
    ]);
    expect(isNaNBits(f16(Number.NaN)[0]!)).toBe(true);
  });

  it('matches a brute-force nearest-even search on random floats of every magnitude', () => {
    const decoded = float16BitsToFloat32(allBits);
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const xs = Float32Array.from({ length: 5000 }, () => random() * 2 ** (Math.floor(random() * 44) - 28));
    const got = float32ToFloat16Bits(xs);
    for (let i = 0; i < xs.length; i++) {
      const want = nearestHalfBits(xs[i]!, decoded);
      if (got[i] !== want)
        expect.fail(`${xs[i]}: got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
    }
  });
});

describe('BF16', () => {
  it('decodes exactly and re-encodes every bit pattern to itself', () => {
    expect(
      Array.from(bfloat16BitsToFloat32(Uint16Array.from([0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001]))),
    ).toEqual([1, -2, 3.140625, Number.POSITIVE_INFINITY, 2 ** -133]);
    const encoded = float32ToBfloat16Bits(bfloat16BitsToFloat32(allBits));
    for (let h = 0; h < 0x10000; h++) {
      const nan = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (nan) expect((encoded[h]! & 0x7f80) === 0x7f80 && (encoded[h]! & 0x7f) !== 0).toBe(true);
      else if (encoded[h] !== h)
        expect.fail(`0x${h.toString(16)} re-encoded as 0x${encoded[h]!.toString(16)}`);
    }
  });

  it('rounds to nearest even, overflowing to infinity, keeping NaN', () => {
    expect(
      bf16(
        1 + 2 ** -8,
        1 + 3 * 2 ** -8,
        1 + 2 ** -8 + 2 ** -20,
        3.4028234663852886e38,
        -(2 ** -8) * (1 + 2 ** -8),
      ),
    ).toEqual([0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xbb80]);
    // A NaN whose payload lives only in the low 16 bits must not turn into Inf.
    const nan = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits(nan))[0])).toBe(true);
  });
});
