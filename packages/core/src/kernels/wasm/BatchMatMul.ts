import {
  BatchMatMul,
  type BatchMatMulAttrs,
  type BatchMatMulInputs,
  broadcast_util,
  getKernel,
  type KernelConfig,
  type TensorInfo,
  Transpose,
  util,
} from '@tensorflow/tfjs-core';
import { simdGemmFor } from './simd/simd_backend.js';
import type { MatrixLayout, SimdGemm } from './simd/simd_gemm.js';
import {
  asKernelFunc,
  callKernel,
  disposeView,
  heapOffset,
  registerView,
  sizeOf,
  stridesOf,
  type WasmBackend,
  type WasmKernelArgs,
  withShape,
} from './wasm_backend.js';

/**
 * BatchMatMul on fast paths only. tfjs-wasm's C++ BatchMatMul uses XNNPACK only for
 * `[1, M, K] @ [1, K, N]` without transposes and otherwise falls back to a scalar loop (~12x slower
 * with a transpose flag, ~10x slower for batch > 1). Here, by default, every float32 matmul runs on
 * core's SIMD GEMM (`simd/`): transposes are absorbed by its packing, batches loop over offsets in
 * the heap, a broadcast `b` folds `a`'s batch into rows. Where tfjs runs XNNPACK on several threads
 * (or with `setWasmMatmulEngine('xnnpack')`):
 * - a transpose flag becomes an explicit transpose (the backend's Transpose kernel, memory-bound);
 * - a `b` with batch 1 (broadcast) folds `a`'s batch into rows: one `[1, batch*M, K] @ [1, K, N]`;
 * - a batched `b` runs one XNNPACK matmul per batch on views into the operands and the output
 *   (tensors registered at an offset of existing memory: no copies), broadcasting batch dims.
 * The original kernel is kept for non-float32 inputs (it throws) and empty shapes.
 */
export function batchMatMulConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<BatchMatMulInputs, BatchMatMulAttrs>) => {
    const { inputs, backend, attrs } = args;
    const a = inputs.a!;
    const b = inputs.b!;
    const { transposeA, transposeB } = attrs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || sizeOf(a.shape) === 0 || sizeOf(b.shape) === 0) {
      return callKernel(original, args);
    }
    const aRank = a.shape.length;
    const bRank = b.shape.length;
    const innerA = transposeA ? a.shape[aRank - 2]! : a.shape[aRank - 1]!;
    const innerB = transposeB ? b.shape[bRank - 1]! : b.shape[bRank - 2]!;
    util.assert(
      innerA === innerB,
      () =>
        `Error in matMul: inner shapes (${innerA}) and (${innerB}) of Tensors with shapes ${a.shape} and ` +
        `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
    const outBatch = broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));

    const gemm = simdGemmFor(backend);
    if (gemm !== null) return simdBatchMatMul(backend, gemm, a, b, transposeA, transposeB, outBatch);

    const aPlain = transposeA ? transposeInner(backend, a) : a;
    const bPlain = transposeB ? transposeInner(backend, b) : b;
    try {
      return plainBatchMatMul(backend, original, aPlain, bPlain, outBatch);
    } finally {
      if (aPlain !== a) backend.disposeData(aPlain.dataId);
      if (bPlain !== b) backend.disposeData(bPlain.dataId);
    }
  });
  return {
    kernelName: BatchMatMul,
    backendName: 'wasm',
    kernelFunc,
    // Keep the original's setup (it binds its C function) in case the backend initialises later.
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
  };
}

/** Batch dims of an operand aligned to the output's, with stride 0 where broadcast. */
function batchStrides(shape: number[], rank: number): { dims: number[]; strides: number[] } {
  const dims = padLeft(shape.slice(0, -2), rank);
  const matrix = shape[shape.length - 2]! * shape[shape.length - 1]!;
  const strides = stridesOf(dims).map((s, i) => (dims[i] === 1 ? 0 : s * matrix));
  return { dims, strides };
}

/** Every batch on the SIMD GEMM, transposes as strides. */
function simdBatchMatMul(
  backend: WasmBackend,
  gemm: SimdGemm,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  outBatch: number[],
): TensorInfo {
  const aRows = a.shape[a.shape.length - 2]!;
  const aCols = a.shape[a.shape.length - 1]!;
  const bRows = b.shape[b.shape.length - 2]!;
  const bCols = b.shape[b.shape.length - 1]!;
  const m = transposeA ? aCols : aRows;
  const k = transposeA ? aRows : aCols;
  const n = transposeB ? bRows : bCols;
  const out = backend.makeOutput([...outBatch, m, n], 'float32');
  const rank = outBatch.length;
  const A = batchStrides(a.shape, rank);
  const B = batchStrides(b.shape, rank);
  // Logical (row, k) of A and (k, col) of B in bytes.
  const aRowStride = transposeA ? 4 : aCols * 4;
  const aKStride = transposeA ? aCols * 4 : 4;
  const bKStride = transposeB ? 4 : bCols * 4;
  const bColStride = transposeB ? bCols * 4 : 4;

  // Trailing batch dims where b is broadcast and a is not are folded into the rows of a (only when
  // a's rows are contiguous across batches: no transposeA).
  let fold = rank;
  if (!transposeA) {
    while (fold > 0 && B.strides[fold - 1] === 0 && A.dims[fold - 1] === outBatch[fold - 1]) fold--;
  }
  const rows = m * sizeOf(outBatch.slice(fold));
  const loopDims = outBatch.slice(0, fold);
  const loops = sizeOf(loopDims);
  const aBase = heapOffset(backend, a);
  const bBase = heapOffset(backend, b);
  const outBase = heapOffset(backend, out);
  const index = new Array<number>(fold).fill(0);
  let aBatch = 0;
  let bBatch = 0;
  for (let i = 0; i < loops; i++) {
    const aLayout: MatrixLayout = { offset: aBase + aBatch * 4, rowStride: aRowStride, colStride: aKStride };
    const bLayout: MatrixLayout = { offset: bBase + bBatch * 4, rowStride: bKStride, colStride: bColStride };
    gemm.matmul(aLayout, bLayout, outBase + i * rows * n * 4, rows, k, n);
    for (let d = fold - 1; d >= 0; d--) {
      aBatch += A.strides[d]!;
      bBatch += B.strides[d]!;
      index[d] = index[d]! + 1;
      if (index[d]! < loopDims[d]!) break;
      aBatch -= A.strides[d]! * loopDims[d]!;
      bBatch -= B.strides[d]! * loopDims[d]!;
      index[d] = 0;
    }
  }
  return out;
}

/** Swaps the last two dims through whatever Transpose kernel the wasm backend has registered. */
function transposeInner(backend: WasmBackend, x: TensorInfo): TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
  return getKernel(Transpose, 'wasm').kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as TensorInfo;
}

/** `a [...batchA, M, K] @ b [...batchB, K, N]`, batch dims broadcast, no transposes (XNNPACK). */
function plainBatchMatMul(
  backend: WasmBackend,
  original: KernelConfig,
  a: TensorInfo,
  b: TensorInfo,
  outBatch: number[],
): TensorInfo {
  const m = a.shape[a.shape.length - 2]!;
  const k = a.shape[a.shape.length - 1]!;
  const n = b.shape[b.shape.length - 1]!;
  const outShape = [...outBatch, m, n];
  const rank = outBatch.length;
  // Batch dims of a and b aligned to the output's, with stride 0 where broadcast.
  const aDims = padLeft(a.shape.slice(0, -2), rank);
  const bDims = padLeft(b.shape.slice(0, -2), rank);
  const aStrides = stridesOf(aDims).map((s, i) => (aDims[i] === 1 ? 0 : s));
  const bStrides = stridesOf(bDims).map((s, i) => (bDims[i] === 1 ? 0 : s));

  // Trailing batch dims where b is broadcast and a is not are folded into the rows of a.
  let fold = rank;
  while (fold > 0 && bStrides[fold - 1] === 0 && aDims[fold - 1] === outBatch[fold - 1]) fold--;
  const rows = m * sizeOf(outBatch.slice(fold));
  const loopDims = outBatch.slice(0, fold);
  const loops = sizeOf(loopDims);

  if (loops === 1) {
    // One XNNPACK call through the original kernel: [1, rows, K] @ [1, K, N].
    const out = original.kernelFunc({
      inputs: { a: withShape(a, [1, rows, k]), b: withShape(b, [1, k, n]) },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as TensorInfo;
    out.shape = outShape;
    return out;
  }

  const out = backend.makeOutput(outShape, 'float32');
  const wasm = backend.wasm;
  const shapes = wasm._malloc(24);
  const h = shapes >>> 2;
  wasm.HEAP32.set([1, rows, k, 1, k, n], h);
  const aBase = heapOffset(backend, a);
  const bBase = heapOffset(backend, b);
  const outBase = heapOffset(backend, out);
  const index = new Array<number>(fold).fill(0);
  let aBatch = 0;
  let bBatch = 0;
  try {
    for (let i = 0; i < loops; i++) {
      const aId = registerView(backend, aBase + aBatch * m * k * 4, rows * k);
      const bId = registerView(backend, bBase + bBatch * k * n * 4, k * n);
      const outId = registerView(backend, outBase + i * rows * n * 4, rows * n);
      wasm._BatchMatMul(aId, shapes, 3, bId, shapes + 12, 3, 0, 0, outId);
      disposeView(backend, aId);
      disposeView(backend, bId);
      disposeView(backend, outId);
      for (let d = fold - 1; d >= 0; d--) {
        aBatch += aStrides[d]!;
        bBatch += bStrides[d]!;
        index[d] = index[d]! + 1;
        if (index[d]! < loopDims[d]!) break;
        aBatch -= aStrides[d]! * loopDims[d]!;
        bBatch -= bStrides[d]! * loopDims[d]!;
        index[d] = 0;
      }
    }
  } finally {
    wasm._free(shapes);
  }
  return out;
}

function padLeft(dims: number[], rank: number): number[] {
  return [...new Array<number>(rank - dims.length).fill(1), ...dims];
}
