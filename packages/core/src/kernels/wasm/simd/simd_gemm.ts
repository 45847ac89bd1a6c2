import {
  GEMM_FUNCTIONS,
  GRID_FULL,
  GRID_K_LOWER,
  GRID_K_UPPER,
  GRID_MR,
  GRID_OUTPUT_LOWER,
  gemmModuleBytes,
  MR,
  NR,
} from './gemm_module.js';
import { relaxedSimdSupported } from './wasm_builder.js';

type GemmExports = {
  kernel(a: number, b: number, c: number, ldc: number, kc: number, accumulate: number): void;
  rowPanels(
    a: number,
    aStride: number,
    b: number,
    c: number,
    cStride: number,
    ldc: number,
    kc: number,
    accumulate: number,
    count: number,
  ): void;
  packGeneric(
    src: number,
    outerStride: number,
    innerStride: number,
    outer: number,
    inner: number,
    width: number,
    dst: number,
  ): void;
  packContiguousA(src: number, innerStride: number, panels: number, inner: number, dst: number): void;
  packContiguousB(src: number, innerStride: number, panels: number, inner: number, dst: number): void;
  packTransposedA(src: number, outerStride: number, panels: number, inner: number, dst: number): void;
  packTransposedB(src: number, outerStride: number, panels: number, inner: number, dst: number): void;
  packContiguousA4(src: number, innerStride: number, panels: number, inner: number, dst: number): void;
  packTransposedA4(src: number, outerStride: number, panels: number, inner: number, dst: number): void;
  gemvRows(a: number, aKStride: number, b: number, bRowStride: number, c: number, k: number, n: number): void;
  gemvDots(a: number, bt: number, btRowStride: number, c: number, k: number, n: number): void;
  edgePanels(
    a: number,
    aStride: number,
    b: number,
    c: number,
    cStride: number,
    ldc: number,
    kc: number,
    accumulate: number,
    count: number,
    rows: number,
    cols: number,
    tile: number,
  ): void;
  grid(
    ap: number,
    aPanelBytes: number,
    bp: number,
    bPanelBytes: number,
    c: number,
    ldc: number,
    k: number,
    mPanels: number,
    nPanels: number,
    restN: number,
    mode: number,
    offset: number,
    tile: number,
  ): void;
};

/** What `gridMatmul` skips (attention's causal structure); see gemm_module.ts. */
export type GridMode = 'full' | 'outputLower' | 'kLower' | 'kUpper';
const GRID_MODES: Record<GridMode, number> = {
  full: GRID_FULL,
  outputLower: GRID_OUTPUT_LOWER,
  kLower: GRID_K_LOWER,
  kUpper: GRID_K_UPPER,
};

/** What the GEMM needs from the memory's owner (tfjs-wasm's emscripten module). */
export interface HeapAllocator {
  _malloc(bytes: number): number;
  _free(pointer: number): void;
}

/** One operand's layout: element (i, j) of the logical matrix is at `offset + i·rowStride + j·colStride` bytes. */
export interface MatrixLayout {
  offset: number;
  rowStride: number;
  colStride: number;
}

/**
 * Most k per pass over a block of A: the packed B panel (KC·NR floats, 12 KiB) stays in L1 beside
 * A's row panel. k is cut into even passes (1152 into three of 384): every pass after the first
 * reads and writes all of C again, so a d = 384 model's products run in one pass, not 256 + 128.
 */
const KC = 384;
/** Up to this many rows of C, no packing: one GEMV per row (generation's single token). */
const GEMV_MAX_ROWS = 4;
/** Row panels per block of A (MR·MC_PANELS·KC floats stay in L2). */
const MC_PANELS = 16;

/**
 * A float32 GEMM on WebAssembly SIMD over a memory it shares with its owner (tfjs-wasm's heap):
 * `C = A·B` with any strides for A and B (transposes cost nothing extra: packing absorbs them).
 * Single-threaded. Scratch for the packed panels is allocated from the owner's heap and kept.
 */
export class SimdGemm {
  readonly #exports: GemmExports;
  readonly #heap: HeapAllocator;
  readonly #memory: WebAssembly.Memory;
  #scratch = 0;
  #scratchBytes = 0;
  /** Multiply-adds are relaxed SIMD's `f32x4.relaxed_madd` (fused where the CPU has FMA). */
  readonly fusedMultiplyAdd: boolean;

  private constructor(
    instance: WebAssembly.Instance,
    memory: WebAssembly.Memory,
    heap: HeapAllocator,
    fusedMultiplyAdd: boolean,
  ) {
    this.#exports = instance.exports as unknown as GemmExports;
    this.#memory = memory;
    this.#heap = heap;
    this.fusedMultiplyAdd = fusedMultiplyAdd;
  }

  /**
   * Compiles the module against `memory` (synchronously: it is a few kilobytes), with relaxed SIMD's
   * multiply-add where the engine has it (`fusedMultiplyAdd: false` asks for a multiply and an add,
   * for A/B measurements; `true` where it is missing is an error).
   */
  static create(
    memory: WebAssembly.Memory,
    heap: HeapAllocator,
    options: { fusedMultiplyAdd?: boolean } = {},
  ): SimdGemm {
    const available = relaxedSimdSupported();
    const fused = options.fusedMultiplyAdd ?? available;
    if (fused && !available) {
      throw new Error('SimdGemm: fusedMultiplyAdd asked for, but this engine has no relaxed SIMD');
    }
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(gemmModuleBytes(shared, fused) as BufferSource);
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    for (const name of GEMM_FUNCTIONS) {
      if (typeof (instance.exports as Record<string, unknown>)[name] !== 'function') {
        throw new Error(`SimdGemm: export ${name} missing`);
      }
    }
    return new SimdGemm(instance, memory, heap, fused);
  }

  /** Frees the scratch buffer (it is reallocated on the next call). */
  releaseScratch(): void {
    if (this.#scratch !== 0) this.#heap._free(this.#scratch);
    this.#scratch = 0;
    this.#scratchBytes = 0;
  }

  #scratchOf(bytes: number): number {
    if (bytes > this.#scratchBytes) {
      this.releaseScratch();
      const size = Math.max(bytes, Math.ceil(this.#scratchBytes * 1.25)) + 64;
      const pointer = this.#heap._malloc(size);
      if (pointer === 0) throw new Error(`SimdGemm: could not allocate ${size} bytes of scratch`);
      this.#scratch = pointer;
      this.#scratchBytes = size - 64;
    }
    // 64-byte alignment for the panels.
    return ((this.#scratch + 63) & ~63) >>> 0;
  }

  /**
   * `C[m x n] = A[m x k] · B[k x n]`, C row-major and contiguous at `c` (bytes). Inputs must not
   * overlap C. `k = 0` writes zeros.
   */
  matmul(a: MatrixLayout, b: MatrixLayout, c: number, m: number, k: number, n: number): void {
    if (m === 0 || n === 0) return;
    if (k === 0) {
      new Float32Array(this.#memory.buffer, c, m * n).fill(0);
      return;
    }
    if (m <= GEMV_MAX_ROWS && this.#gemv(a, b, c, m, k, n)) return;
    const mPanels = Math.ceil(m / MR);
    const nPanels = Math.ceil(n / NR);
    const aBytes = mPanels * MR * k * 4;
    const bBytes = nPanels * NR * k * 4;
    const scratch = this.#scratchOf(aBytes + bBytes + MR * NR * 4 + 128);
    const ap = scratch;
    const bp = ((ap + aBytes + 63) & ~63) >>> 0;
    const tile = ((bp + bBytes + 63) & ~63) >>> 0;
    const x = this.#exports;
    // A: panels of MR rows along m, k inner.
    this.#pack(a.offset, a.rowStride, a.colStride, m, k, MR, ap, x.packContiguousA, x.packTransposedA);
    // B: panels of NR columns along n, k inner.
    this.#pack(b.offset, b.colStride, b.rowStride, n, k, NR, bp, x.packContiguousB, x.packTransposedB);

    const fullM = Math.floor(m / MR);
    const fullN = Math.floor(n / NR);
    const restM = m - fullM * MR;
    const restN = n - fullN * NR;
    const aPanelBytes = k * MR * 4;
    const bPanelBytes = k * NR * 4;
    const ldc = n * 4;
    const cPanelBytes = MR * ldc;
    const passK = Math.ceil(k / Math.ceil(k / KC));
    for (let pc = 0; pc < k; pc += passK) {
      const kc = Math.min(passK, k - pc);
      const accumulate = pc > 0 ? 1 : 0;
      for (let ic = 0; ic < fullM; ic += MC_PANELS) {
        const count = Math.min(MC_PANELS, fullM - ic);
        const aBlock = ap + ic * aPanelBytes + pc * MR * 4;
        const cBlock = c + ic * cPanelBytes;
        for (let jp = 0; jp < fullN; jp++) {
          const bPanel = bp + jp * bPanelBytes + pc * NR * 4;
          x.rowPanels(
            aBlock,
            aPanelBytes,
            bPanel,
            cBlock + jp * NR * 4,
            cPanelBytes,
            ldc,
            kc,
            accumulate,
            count,
          );
        }
        if (restN > 0) {
          const bPanel = bp + fullN * bPanelBytes + pc * NR * 4;
          const cEdge = cBlock + fullN * NR * 4;
          x.edgePanels(
            aBlock,
            aPanelBytes,
            bPanel,
            cEdge,
            cPanelBytes,
            ldc,
            kc,
            accumulate,
            count,
            MR,
            restN,
            tile,
          );
        }
      }
      if (restM > 0) {
        // The last, partial row panel across every column panel.
        const aPanel = ap + fullM * aPanelBytes + pc * MR * 4;
        for (let jp = 0; jp < nPanels; jp++) {
          const bPanel = bp + jp * bPanelBytes + pc * NR * 4;
          const cols = jp < fullN ? NR : restN;
          const cTile = c + fullM * cPanelBytes + jp * NR * 4;
          x.edgePanels(
            aPanel,
            aPanelBytes,
            bPanel,
            cTile,
            cPanelBytes,
            ldc,
            kc,
            accumulate,
            1,
            restM,
            cols,
            tile,
          );
        }
      }
    }
  }

  /**
   * `C = A·B` for the small products of attention: one wasm call over every tile, with a causal
   * `mode` (relative to the diagonal `j = i + offset`) skipping tiles or k ranges that are zero or
   * unused. C's rows are `ldc` bytes apart; `m` must be a multiple of 4 (false is returned, nothing
   * done, otherwise). Skipped tiles of `outputLower` are left as they were.
   */
  gridMatmul(
    a: MatrixLayout,
    b: MatrixLayout,
    c: number,
    ldc: number,
    m: number,
    k: number,
    n: number,
    mode: GridMode,
    offset: number,
  ): boolean {
    if (m % GRID_MR !== 0 || m === 0 || n === 0 || k === 0) return false;
    const nPanels = Math.ceil(n / NR);
    const aBytes = m * k * 4;
    const bBytes = nPanels * NR * k * 4;
    const scratch = this.#scratchOf(aBytes + bBytes + GRID_MR * NR * 4 + 128);
    const ap = scratch;
    const bp = ((ap + aBytes + 63) & ~63) >>> 0;
    const tile = ((bp + bBytes + 63) & ~63) >>> 0;
    const x = this.#exports;
    this.#pack(a.offset, a.rowStride, a.colStride, m, k, GRID_MR, ap, x.packContiguousA4, x.packTransposedA4);
    this.#pack(b.offset, b.colStride, b.rowStride, n, k, NR, bp, x.packContiguousB, x.packTransposedB);
    x.grid(
      ap,
      k * GRID_MR * 4,
      bp,
      k * NR * 4,
      c,
      ldc,
      k,
      m / GRID_MR,
      nPanels,
      n % NR,
      GRID_MODES[mode],
      offset,
      tile,
    );
    return true;
  }

  /** C row by row without packing, when B's layout allows (contiguous columns, or rows of Bᵀ). */
  #gemv(a: MatrixLayout, b: MatrixLayout, c: number, m: number, k: number, n: number): boolean {
    const x = this.#exports;
    if (b.colStride === 4) {
      for (let i = 0; i < m; i++)
        x.gemvRows(a.offset + i * a.rowStride, a.colStride, b.offset, b.rowStride, c + i * n * 4, k, n);
      return true;
    }
    if (b.rowStride === 4 && a.colStride === 4) {
      for (let i = 0; i < m; i++)
        x.gemvDots(a.offset + i * a.rowStride, b.offset, b.colStride, c + i * n * 4, k, n);
      return true;
    }
    return false;
  }

  /** Packs `outer x inner` (strides in bytes) into panels of `width` along outer, zero-padded. */
  #pack(
    src: number,
    outerStride: number,
    innerStride: number,
    outer: number,
    inner: number,
    width: number,
    dst: number,
    contiguous: (src: number, innerStride: number, panels: number, inner: number, dst: number) => void,
    transposed: (src: number, outerStride: number, panels: number, inner: number, dst: number) => void,
  ): void {
    let full = Math.floor(outer / width);
    if (full > 0 && outerStride === 4) {
      contiguous(src, innerStride, full, inner, dst);
    } else if (full > 0 && innerStride === 4 && inner % 4 === 0) {
      transposed(src, outerStride, full, inner, dst);
    } else {
      full = 0;
    }
    const rest = outer - full * width;
    if (rest > 0) {
      this.#exports.packGeneric(
        src + full * width * outerStride,
        outerStride,
        innerStride,
        rest,
        inner,
        width,
        dst + full * width * inner * 4,
      );
    }
  }
}
