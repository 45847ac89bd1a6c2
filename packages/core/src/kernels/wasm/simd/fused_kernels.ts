import { FUSED_FUNCTIONS, fusedModuleBytes } from './fused_module.js';
import type { HeapAllocator } from './simd_gemm.js';

type FusedExports = {
  geluNew(x: number, y: number, vectors: number): void;
  geluNewGrad(x: number, dy: number, dx: number, vectors: number): void;
  layerNorm(x: number, gamma: number, beta: number, y: number, rows: number, d: number, eps: number): void;
  layerNormGrad(
    x: number,
    gamma: number,
    dy: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    rows: number,
    d: number,
    eps: number,
  ): void;
  softmaxGrad(y: number, dy: number, dx: number, rows: number, d: number): void;
  causalSoftmax(
    s: number,
    p: number,
    rows: number,
    cols: number,
    offset: number,
    scale: number,
    tmp: number,
  ): void;
  causalSoftmaxGrad(
    p: number,
    dp: number,
    ds: number,
    rows: number,
    cols: number,
    offset: number,
    scale: number,
  ): void;
  columnSums(x: number, out: number, rows: number, cols: number): void;
  crossEntropyGrad(p: number, targets: number, dx: number, rows: number, d: number, scale: number): void;
};

/**
 * The fused element-wise kernels (`fused_module.ts`) over a memory shared with tfjs-wasm's heap.
 * Pointers are byte offsets; element-wise kernels take any length (a tail of fewer than 4 floats
 * goes through a small scratch block), row kernels need a row length that is a multiple of 4.
 */
export class FusedKernels {
  readonly #x: FusedExports;
  readonly #memory: WebAssembly.Memory;
  /** 3 blocks of 16 bytes for element-wise tails. */
  readonly #tail: number;

  private constructor(instance: WebAssembly.Instance, memory: WebAssembly.Memory, heap: HeapAllocator) {
    this.#x = instance.exports as unknown as FusedExports;
    this.#memory = memory;
    const block = heap._malloc(64 + 48);
    if (block === 0) throw new Error('FusedKernels: could not allocate scratch');
    this.#tail = ((block + 15) & ~15) >>> 0;
  }

  static create(memory: WebAssembly.Memory, heap: HeapAllocator): FusedKernels {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(fusedModuleBytes(shared) as BufferSource);
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    for (const name of FUSED_FUNCTIONS) {
      if (typeof (instance.exports as Record<string, unknown>)[name] !== 'function') {
        throw new Error(`FusedKernels: export ${name} missing`);
      }
    }
    return new FusedKernels(instance, memory, heap);
  }

  /** Runs an element-wise kernel over `n` floats: whole vectors in place, the tail via scratch. */
  #elementwise(inputs: number[], output: number, n: number, run: (ptrs: number[], vectors: number) => void) {
    const vectors = n >> 2;
    if (vectors > 0) run([...inputs, output], vectors);
    const rest = n - vectors * 4;
    if (rest === 0) return;
    const heap = new Float32Array(this.#memory.buffer);
    const blocks = [...inputs, output].map((_, i) => this.#tail + 16 * i);
    inputs.forEach((p, i) => {
      const dst = blocks[i]! >>> 2;
      heap.fill(0, dst, dst + 4);
      for (let j = 0; j < rest; j++) heap[dst + j] = heap[(p >>> 2) + vectors * 4 + j]!;
    });
    run(blocks, 1);
    const src = blocks[inputs.length]! >>> 2;
    for (let j = 0; j < rest; j++) heap[(output >>> 2) + vectors * 4 + j] = heap[src + j]!;
  }

  geluNew(x: number, y: number, n: number): void {
    this.#elementwise([x], y, n, ([a, b], v) => this.#x.geluNew(a!, b!, v));
  }

  geluNewGrad(x: number, dy: number, dx: number, n: number): void {
    this.#elementwise([x, dy], dx, n, ([a, b, c], v) => this.#x.geluNewGrad(a!, b!, c!, v));
  }

  layerNorm(x: number, gamma: number, beta: number, y: number, rows: number, d: number, eps: number): void {
    if (d % 4 !== 0) throw new Error('FusedKernels.layerNorm: the row length must be a multiple of 4');
    this.#x.layerNorm(x, gamma, beta, y, rows, d, eps);
  }

  layerNormGrad(
    x: number,
    gamma: number,
    dy: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    rows: number,
    d: number,
    eps: number,
  ): void {
    if (d % 4 !== 0) throw new Error('FusedKernels.layerNormGrad: the row length must be a multiple of 4');
    this.#x.layerNormGrad(x, gamma, dy, dx, dgamma, dbeta, rows, d, eps);
  }

  /** Row i of P = softmax(scale · S[i][0..i+offset]), zero past the diagonal; S may alias P. */
  causalSoftmax(s: number, p: number, rows: number, cols: number, offset: number, scale: number): void {
    this.#x.causalSoftmax(s, p, rows, cols, offset, scale, this.#tail);
  }

  /** dS = scale · P ⊙ (dP - Σ P·dP) on and below the diagonal, zero past it (dP read there only). */
  causalSoftmaxGrad(
    p: number,
    dp: number,
    ds: number,
    rows: number,
    cols: number,
    offset: number,
    scale: number,
  ): void {
    this.#x.causalSoftmaxGrad(p, dp, ds, rows, cols, offset, scale);
  }

  /** out[j] = Σ_r x[r][j], row by row in float32 (bit-identical to the wasm Sum kernel's order). */
  columnSums(x: number, out: number, rows: number, cols: number): void {
    this.#x.columnSums(x, out, rows, cols);
  }

  /**
   * dx[i] = scale·(P[i] - onehot(targets[i])) per row of `d` (any d), zero for a target outside
   * [0, d) (ignored); targets int32.
   */
  crossEntropyGrad(p: number, targets: number, dx: number, rows: number, d: number, scale: number): void {
    this.#x.crossEntropyGrad(p, targets, dx, rows, d, scale);
  }

  softmaxGrad(y: number, dy: number, dx: number, rows: number, d: number): void {
    if (d % 4 !== 0) throw new Error('FusedKernels.softmaxGrad: the row length must be a multiple of 4');
    this.#x.softmaxGrad(y, dy, dx, rows, d);
  }
}
