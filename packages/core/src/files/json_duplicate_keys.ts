/**
 * `JSON.parse` silently keeps the last of two equal keys in an object. A safetensors header with a
 * tensor name twice is malformed (two offsets for one name), so we scan the raw text for repeats.
 *
 * The text must already be known to be valid JSON (call after `JSON.parse` succeeded): the scanner
 * only tracks strings and nesting. Keys are compared after unescaping, so `"a"` equals `"\u0061"`.
 * Returns the first repeated key and the keys of the objects enclosing it, or undefined.
 */
export function findDuplicateJsonKey(text: string): { key: string; path: string[] } | undefined {
  // One entry per open bracket: the keys seen so far for an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  const path: string[] = [];
  let lastKey = '';
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      if (!expectKey) continue;
      const raw = text.slice(start + 1, i);
      const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
      const keys = stack[stack.length - 1]!;
      if (keys.has(key)) return { key, path: [...path] };
      keys.add(key);
      lastKey = key;
      expectKey = false;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length > 0) path.push(stack[stack.length - 1] !== null ? lastKey : '[]');
      stack.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      path.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return undefined;
}
