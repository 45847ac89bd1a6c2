// core's SIMD GEMM on its own (no tfjs): every operand layout, edge tiles, the GEMV rows, the causal
// grid modes, and a shared memory (the threaded WASM build's).
import { describe, expect, it } from 'vitest';
import { FusedKernels } from './fused_kernels.js';
import { type GridMode, type MatrixLayout, SimdGemm } from './simd_gemm.js';

function setup(shared: boolean) {
  const memory = shared
    ? new WebAssembly.Memory({ initial: 512, maximum: 1024, shared: true })
    : new WebAssembly.Memory({ initial: 512 });
  let top = 16 << 20; // the test's operands live below 16 MiB, scratch above
  const heap = {
    _malloc: (n: number) => {
      const at = (top + 63) & ~63;
      top = at + n;
      return at;
    },
    _free: () => {},
  };
  return { memory, gemm: SimdGemm.create(memory, heap), fused: FusedKernels.create(memory, heap) };
}

let seed = 7;
const random = () => {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
};

/** Fills `count` floats at byte offset `at` with random values; returns the offset. */
function fill(memory: WebAssembly.Memory, at: number, count: number): number {
  const heap = new Float32Array(memory.buffer);
  for (let i = 0; i < count; i++) heap[at / 4 + i] = random();
  return at;
}

function element(memory: WebAssembly.Memory, layout: MatrixLayout, i: number, j: number): number {
  return new Float32Array(memory.buffer)[(layout.offset + i * layout.rowStride + j * layout.colStride) / 4]!;
}

function operands(memory: WebAssembly.Memory, m: number, k: number, n: number, ta: boolean, tb: boolean) {
  const a: MatrixLayout = ta
    ? { offset: fill(memory, 0, m * k), rowStride: 4, colStride: m * 4 }
    : { offset: fill(memory, 0, m * k), rowStride: k * 4, colStride: 4 };
  const bAt = 4 << 20;
  const b: MatrixLayout = tb
    ? { offset: fill(memory, bAt, k * n), rowStride: 4, colStride: k * 4 }
    : { offset: fill(memory, bAt, k * n), rowStride: n * 4, colStride: 4 };
  return { a, b, c: 8 << 20 };
}

function expectProduct(
  memory: WebAssembly.Memory,
  { a, b, c }: { a: MatrixLayout; b: MatrixLayout; c: number },
  m: number,
  k: number,
  n: number,
  ldc = n,
  needed: (i: number, j: number) => boolean = () => true,
  aZero: (i: number, kk: number) => boolean = () => false,
) {
  const heap = new Float32Array(memory.buffer);
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      if (!needed(i, j)) continue;
      let sum = 0;
      for (let kk = 0; kk < k; kk++)
        if (!aZero(i, kk)) sum += element(memory, a, i, kk) * element(memory, b, kk, j);
      worst = Math.max(worst, Math.abs(sum - heap[c / 4 + i * ldc + j]!));
    }
  }
  expect(worst).toBeLessThan(1e-4);
}

describe('SimdGemm', () => {
  for (const shared of [false, true]) {
    it(`multiplies every layout, with edge tiles and GEMV rows (${shared ? 'shared' : 'plain'} memory)`, () => {
      const { memory, gemm } = setup(shared);
      for (const [m, k, n] of [
        [1, 7, 13],
        [3, 64, 40],
        [4, 1, 8],
        [5, 300, 17],
        [23, 257, 33],
        [81, 40, 9],
        // k in even passes (193 + 192; 334 + 334 + 332), several blocks of rows, a partial row panel.
        [12, 385, 16],
        [86, 1000, 19],
      ] as const) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            const ops = operands(memory, m, k, n, ta, tb);
            gemm.matmul(ops.a, ops.b, ops.c, m, k, n);
            expectProduct(memory, ops, m, k, n);
          }
        }
      }
    });
  }

  // The causal grid of attention: outputLower computes C on and below j = i + offset; kLower and
  // kUpper read A only where the mask leaves it non-zero (the rest is poisoned to prove it).
  const modes: [GridMode, number, number, number, number][] = [
    ['full', 8, 16, 12, 0],
    ['outputLower', 12, 16, 20, 8],
    ['kLower', 12, 20, 16, 8],
    ['kUpper', 20, 12, 16, 8],
  ];
  for (const [mode, m, k, n, offset] of modes) {
    it(`runs the ${mode} grid (m ${m}, k ${k}, n ${n}, offset ${offset})`, () => {
      const { memory, gemm } = setup(false);
      const ops = operands(memory, m, k, n, false, false);
      const heap = new Float32Array(memory.buffer);
      const aZero =
        mode === 'kLower'
          ? (i: number, kk: number) => kk > i + offset
          : mode === 'kUpper'
            ? (i: number, kk: number) => kk < i - offset
            : () => false;
      for (let i = 0; i < m; i++)
        for (let kk = 0; kk < k; kk++) if (aZero(i, kk)) heap[ops.a.offset / 4 + i * k + kk] = 0;
      const ldc = n + 3;
      expect(gemm.gridMatmul(ops.a, ops.b, ops.c, ldc * 4, m, k, n, mode, offset)).toBe(true);
      const needed = mode === 'outputLower' ? (i: number, j: number) => j <= i + offset : () => true;
      expectProduct(memory, ops, m, k, n, ldc, needed, aZero);
    });
  }

  it('refuses a grid whose rows do not fill its panels', () => {
    const { memory, gemm } = setup(false);
    const ops = operands(memory, 6, 4, 8, false, false);
    expect(gemm.gridMatmul(ops.a, ops.b, ops.c, 32, 6, 4, 8, 'full', 0)).toBe(false);
  });

  it('runs the fused kernels on a shared memory', () => {
    const { memory, fused } = setup(true);
    const heap = new Float32Array(memory.buffer);
    heap.set([0.5, -1, 2, 3, -4], 0);
    fused.columnSums(0, 64, 1, 5);
    expect(Array.from(heap.subarray(16, 21))).toEqual([0.5, -1, 2, 3, -4]);
  });
});
