import { GEMM_FUNCTIONS, gemmModuleBytes, MR, NR } from './gemm_module.js';

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

/** k per pass over a block of A (the packed B panel, KC·NR floats, stays in L1); 192-512 measured alike. */
const KC = 256;
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

  private constructor(instance: WebAssembly.Instance, memory: WebAssembly.Memory, heap: HeapAllocator) {
    this.#exports = instance.exports as unknown as GemmExports;
    this.#memory = memory;
    this.#heap = heap;
  }

  /** Compiles the module against `memory` (synchronously: it is a few kilobytes). */
  static create(memory: WebAssembly.Memory, heap: HeapAllocator): SimdGemm {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(gemmModuleBytes(shared) as BufferSource);
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    for (const name of GEMM_FUNCTIONS) {
      if (typeof (instance.exports as Record<string, unknown>)[name] !== 'function') {
        throw new Error(`SimdGemm: export ${name} missing`);
      }
    }
    return new SimdGemm(instance, memory, heap);
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
    return (this.#scratch + 63) & ~63;
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
    const mPanels = Math.ceil(m / MR);
    const nPanels = Math.ceil(n / NR);
    const aBytes = mPanels * MR * k * 4;
    const bBytes = nPanels * NR * k * 4;
    const scratch = this.#scratchOf(aBytes + bBytes + MR * NR * 4 + 128);
    const ap = scratch;
    const bp = (ap + aBytes + 63) & ~63;
    const tile = (bp + bBytes + 63) & ~63;
    const x = this.#exports;
    // A: panels of MR rows along m, k inner.
    this.#pack(a.offset, a.rowStride, a.colStride, m, k, MR, ap, x.packContiguousA, x.packTransposedA);
    // B: panels of NR columns along n, k inner.
    this.#pack(b.offset, b.colStride, b.rowStride, n, k, NR, bp, x.packContiguousB, x.packTransposedB);

    const fullM = Math.floor(m / MR);
    const fullN = Math.floor(n / NR);
    const aPanelBytes = k * MR * 4;
    const bPanelBytes = k * NR * 4;
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      const accumulate = pc > 0 ? 1 : 0;
      for (let ic = 0; ic < fullM; ic += MC_PANELS) {
        const count = Math.min(MC_PANELS, fullM - ic);
        const aBlock = ap + ic * aPanelBytes + pc * MR * 4;
        const cBlock = c + ic * MR * n * 4;
        for (let jp = 0; jp < fullN; jp++) {
          x.rowPanels(
            aBlock,
            aPanelBytes,
            bp + jp * bPanelBytes + pc * NR * 4,
            cBlock + jp * NR * 4,
            MR * n * 4,
            n * 4,
            kc,
            accumulate,
            count,
          );
        }
      }
    }
    if (fullM === mPanels && fullN === nPanels) return;
    // Edge tiles (a partial last row panel or column panel): computed whole into `tile`, copied.
    const heap = new Float32Array(this.#memory.buffer);
    for (let ip = 0; ip < mPanels; ip++) {
      const rows = Math.min(MR, m - ip * MR);
      for (let jp = ip < fullM ? fullN : 0; jp < nPanels; jp++) {
        const cols = Math.min(NR, n - jp * NR);
        x.kernel(ap + ip * aPanelBytes, bp + jp * bPanelBytes, tile, NR * 4, k, 0);
        for (let r = 0; r < rows; r++) {
          const dst = (c >> 2) + (ip * MR + r) * n + jp * NR;
          const src = (tile >> 2) + r * NR;
          for (let j = 0; j < cols; j++) heap[dst + j] = heap[src + j]!;
        }
      }
    }
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
