import { describe, expect, it } from 'vitest';
import { pythonFloatRepr, pythonJsonDumps } from './python_json.js';

describe('pythonFloatRepr', () => {
  it('prints what Python repr(float) prints', () => {
    // Expected strings are CPython's repr() of the same doubles.
    const cases: [number, string][] = [
      [0, '0.0'],
      [-0, '-0.0'],
      [1, '1.0'],
      [-2, '-2.0'],
      [100, '100.0'],
      [0.1, '0.1'],
      [1 / 3, '0.3333333333333333'],
      [123.456, '123.456'],
      [0.0001, '0.0001'],
      [0.00001, '1e-05'],
      [2e-7, '2e-07'],
      [1.5e-10, '1.5e-10'],
      [1e15, '1000000000000000.0'],
      [1234567890123456, '1234567890123456.0'],
      [1e16, '1e+16'],
      [1.5e16, '1.5e+16'],
      [1e100, '1e+100'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      [Number.NEGATIVE_INFINITY, '-Infinity'],
    ];
    for (const [x, expected] of cases) expect(pythonFloatRepr(x), String(x)).toBe(expected);
  });
});

describe('pythonJsonDumps', () => {
  it('indents by 2, sorts keys, and keeps empty containers inline', () => {
    const value = { b: [1, 'x', { d: null, c: true }], a: {}, e: [], f: { z: false } };
    expect(pythonJsonDumps(value)).toBe(
      '{\n  "a": {},\n  "b": [\n    1,\n    "x",\n    {\n      "c": true,\n      "d": null\n    }\n  ],\n  "e": [],\n  "f": {\n    "z": false\n  }\n}',
    );
    expect(pythonJsonDumps([])).toBe('[]');
    expect(pythonJsonDumps('top')).toBe('"top"');
  });

  it('escapes like ensure_ascii=True: short escapes, lowercase \\u, surrogate pairs, DEL', () => {
    expect(pythonJsonDumps('q"b\\/\n\r\t\b\f\u0001é\u007f😀~')).toBe(
      '"q\\"b\\\\/\\n\\r\\t\\b\\f\\u0001\\u00e9\\u007f\\ud83d\\ude00~"',
    );
  });

  it('sorts keys by code point as Python does, not by UTF-16 unit', () => {
    const text = pythonJsonDumps({ b: 1, '😀': 2, a: 3, '\uffff': 4, B: 5 });
    expect(text).toBe('{\n  "B": 5,\n  "a": 3,\n  "b": 1,\n  "\\uffff": 4,\n  "\\ud83d\\ude00": 2\n}');
  });

  it('prints integral numbers as ints unless their top-level key is a float', () => {
    const value = { dropout: 0, alpha: 16, scale: 0.5, huge: 1e21, nested: { dropout: 0 }, list: [1, 2] };
    expect(pythonJsonDumps(value, new Set(['dropout', 'list']))).toBe(
      '{\n  "alpha": 16,\n  "dropout": 0.0,\n  "huge": 1000000000000000000000,\n  "list": [\n    1.0,\n    2.0\n  ],\n  "nested": {\n    "dropout": 0\n  },\n  "scale": 0.5\n}',
    );
  });

  it('drops undefined properties and writes undefined list items as null, like JSON.stringify', () => {
    expect(pythonJsonDumps({ a: undefined, b: [undefined] })).toBe('{\n  "b": [\n    null\n  ]\n}');
  });
});
