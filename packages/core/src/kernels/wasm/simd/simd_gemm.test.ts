// core's SIMD GEMM on its own (no tfjs): every operand layout, edge tiles, the GEMV rows, the causal
// grid modes, a shared memory (the threaded WASM build's), with relaxed SIMD's multiply-add and
// without.
import { describe, expect, it } from 'vitest';
import { enableRelaxedSimd } from '../../../backend/relaxed_simd.js';
import { FusedKernels } from './fused_kernels.js';
import { type GridMode, type MatrixLayout, SimdGemm } from './simd_gemm.js';

// Node 20 needs V8's flag (initBackend sets it too); Node 22+ and Chrome ship relaxed SIMD.
const relaxedSimd = await enableRelaxedSimd();

function setup(shared: boolean, fusedMultiplyAdd = relaxedSimd !== null) {
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
  return {
    memory,
    gemm: SimdGemm.create(memory, heap, { fusedMultiplyAdd }),
    fused: FusedKernels.create(memory, heap),
  };
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
  it('has relaxed SIMD in this Node (built in from Node 22, by V8 flag in Node 20)', () => {
    expect(relaxedSimd).not.toBeNull();
    expect(setup(false).gemm.fusedMultiplyAdd).toBe(true);
  });

  for (const [shared, fusedMultiplyAdd] of [
    [false, true],
    [true, true],
    [false, false],
    [true, false],
  ] as const) {
    const how = `${shared ? 'shared' : 'plain'} memory, ${fusedMultiplyAdd ? 'fused' : 'separate'} multiply-add`;
    it(`multiplies every layout, with edge tiles and GEMV rows (${how})`, () => {
      const { memory, gemm } = setup(shared, fusedMultiplyAdd);
      expect(gemm.fusedMultiplyAdd).toBe(fusedMultiplyAdd);
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

  // (1 + 2⁻¹²)² = 1 + 2⁻¹¹ + 2⁻²⁴ is not a float32: a separate multiply rounds it to 1 + 2⁻¹¹ (a tie,
  // to even) before the add of -(1 + 2⁻¹¹) gives 0; a fused multiply-add keeps the 2⁻²⁴. On CPUs
  // with FMA (x64 since 2013, arm64), which relaxed SIMD's multiply-add then uses.
  for (const [m, path] of [
    [8, 'micro-kernel'],
    [2, 'GEMV rows'],
  ] as const) {
    it(`rounds a multiply-add once when fused, twice when not (${path})`, () => {
      for (const fusedMultiplyAdd of [true, false]) {
        const { memory, gemm } = setup(false, fusedMultiplyAdd);
        const heap = new Float32Array(memory.buffer);
        const x = 1 + 2 ** -12;
        const n = 8;
        // Every row of A is [1, x]; every column of B is [-(1 + 2⁻¹¹), x]: k in that order.
        for (let i = 0; i < m; i++) heap.set([1, x], i * 2);
        const b = 1 << 20;
        heap.fill(-(1 + 2 ** -11), b / 4, b / 4 + n);
        heap.fill(x, b / 4 + n, b / 4 + 2 * n);
        const c = 2 << 20;
        gemm.matmul(
          { offset: 0, rowStride: 8, colStride: 4 },
          { offset: b, rowStride: n * 4, colStride: 4 },
          c,
          m,
          2,
          n,
        );
        const expected = fusedMultiplyAdd ? 2 ** -24 : 0;
        expect(Array.from(heap.subarray(c / 4, c / 4 + m * n))).toEqual(new Array(m * n).fill(expected));
      }
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
