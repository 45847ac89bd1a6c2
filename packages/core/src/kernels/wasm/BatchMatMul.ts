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
 * BatchMatMul on the XNNPACK path only. tfjs-wasm's C++ BatchMatMul uses XNNPACK only for
 * `[1, M, K] @ [1, K, N]` without transposes and otherwise falls back to a scalar loop (~12x slower
 * with a transpose flag, ~10x slower for batch > 1). Here:
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

/** Swaps the last two dims through whatever Transpose kernel the wasm backend has registered. */
function transposeInner(backend: WasmBackend, x: TensorInfo): TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
  return getKernel(Transpose, 'wasm').kernelFunc({ inputs: { x }, backend, attrs: { perm } }) as TensorInfo;
}

/** `a [...batchA, M, K] @ b [...batchB, K, N]`, batch dims broadcast, no transposes. */
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
  const h = shapes >> 2;
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
