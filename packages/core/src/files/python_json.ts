// The exact text of Python's `json.dumps(value, indent=2, sort_keys=True)` (ensure_ascii on, NaN and
// Infinity allowed), which is how Hugging Face PEFT writes adapter_config.json. Matching it byte for
// byte keeps files written here indistinguishable from PEFT's and diffs between them empty.
import { compareCodePoints } from './code_point_order.js';

const NO_KEYS: ReadonlySet<string> = new Set();

const SHORT_ESCAPES: Readonly<Record<number, string>> = {
  34: '\\"',
  92: '\\\\',
  8: '\\b',
  12: '\\f',
  10: '\\n',
  13: '\\r',
  9: '\\t',
};

/** Python's `ensure_ascii` string encoding: everything outside ' '..'~' becomes an escape. */
function pythonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const short = SHORT_ESCAPES[c];
    if (short !== undefined) out += short;
    else if (c < 0x20 || c > 0x7e) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i];
  }
  return `${out}"`;
}

/** Python's `repr(float)`: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest digits that round-trip, as Python does.
  const [mantissa, exponentText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  const pointAt = exponent + 1; // digits are 0.d1d2... x 10^pointAt
  if (pointAt <= -4 || pointAt > 16) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${digits[0]}${fraction}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (pointAt <= 0) return `${sign}0.${'0'.repeat(-pointAt)}${digits}`;
  if (pointAt >= digits.length) return `${sign}${digits}${'0'.repeat(pointAt - digits.length)}.0`;
  return `${sign}${digits.slice(0, pointAt)}.${digits.slice(pointAt)}`;
}

function pythonNumber(x: number, isFloat: boolean): string {
  if (isFloat || !Number.isInteger(x)) return pythonFloatRepr(x);
  return Math.abs(x) < 1e21 ? String(x) : BigInt(x).toString(); // Python ints never use exponents
}

/** `floatKeys` applies to the keys of this object only; `isFloat` to this value (and list items). */
function encode(value: unknown, indent: string, isFloat: boolean, floatKeys: ReadonlySet<string>): string {
  if (value === null) return 'null';
  if (value === true) return 'true';
  if (value === false) return 'false';
  if (typeof value === 'number') return pythonNumber(value, isFloat);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return pythonString(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    // Like JSON.stringify, array holes and undefined become null.
    const items = value.map((item: unknown) => encode(item ?? null, inner, isFloat, NO_KEYS));
    return `[\n${inner}${items.join(`,\n${inner}`)}\n${indent}]`;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => compareCodePoints(a, b));
    if (entries.length === 0) return '{}';
    const items = entries.map(
      ([k, v]) => `${pythonString(k)}: ${encode(v, inner, floatKeys.has(k), NO_KEYS)}`,
    );
    return `{\n${inner}${items.join(`,\n${inner}`)}\n${indent}}`;
  }
  throw new TypeError(`cannot encode a ${typeof value} as JSON`);
}

/**
 * `json.dumps(value, indent=2, sort_keys=True)` as Python prints it. JavaScript has one number type,
 * so integral values print as ints unless their top-level key is in `floatKeys` (Python floats such
 * as `lora_dropout: 0.0`); non-integral values always print as floats.
 */
export function pythonJsonDumps(value: unknown, floatKeys: ReadonlySet<string> = NO_KEYS): string {
  return encode(value, '', false, floatKeys);
}
