/**
 * Orders strings by Unicode code point, the order of Python's `sorted(str)` and of Rust's byte-wise
 * UTF-8 `String` comparison. JavaScript's default sort compares UTF-16 code units instead, which
 * differs once characters outside the Basic Multilingual Plane meet characters above U+E000.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800..U+DFFF) stand for code points above U+FFFF, so they sort after the rest.
    const xIsSurrogate = x >= 0xd800 && x <= 0xdfff;
    const yIsSurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xIsSurrogate !== yIsSurrogate) return xIsSurrogate ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
