// IEEE half precision (F16) and bfloat16 (BF16) <-> float32, by bit manipulation.
// Exact in the widening direction; the narrowing direction rounds to nearest, ties to even, like
// PyTorch's `tensor.half()` / `tensor.bfloat16()`, so files we write match files Python writes.

/** Float32 value of every F16 bit pattern, built on first use (256 KiB) for fast bulk decoding. */
let f16Table: Float32Array | undefined;

function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Decodes little-endian F16 bit patterns to float32 (exact: every half value is a float32). */
export function float16BitsToFloat32(bits: Uint16Array): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) f16Table[h] = halfBitsToFloat(h);
  }
  const table = f16Table;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** Decodes BF16 bit patterns to float32 (exact: bfloat16 is the top half of a float32). */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16;
  return out;
}

function floatBitsToHalf(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  const mantissa = f & 0x7fffff;
  if (exponent === 0xff) {
    // Keep NaN a NaN (quiet bit set, so a payload living only in dropped bits cannot become Inf).
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to infinity
  if (e <= 0) {
    // Subnormal half (or zero): shift the full significand down, rounding to nearest even.
    if (e < -10) return sign; // below half the smallest subnormal: rounds to (signed) zero
    const significand = mantissa | 0x800000;
    const shift = 14 - e;
    let half = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and 0x7bff + 1 becomes Inf).
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return half;
}

/** Encodes float32 values to F16 bit patterns, rounding to nearest even; overflow becomes ±Inf. */
export function float32ToFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatBitsToHalf(bits[i]!);
  return out;
}

/** Encodes float32 values to BF16 bit patterns, rounding to nearest even. */
export function float32ToBfloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const f = bits[i]!;
    if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) {
      out[i] = (f >>> 16) | 0x40; // NaN stays NaN even if its payload was only in the low half
    } else {
      out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16; // f <= 0xff800000 here: the sum stays below 2^32
    }
  }
  return out;
}
