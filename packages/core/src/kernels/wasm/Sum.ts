import {
  backend_util,
  type KernelConfig,
  Sum,
  type SumAttrs,
  type SumInputs,
  util,
} from '@tensorflow/tfjs-core';
import { fusedKernelsFor } from './simd/simd_backend.js';
import {
  asKernelFunc,
  callKernel,
  heapIndex,
  heapOffset,
  sizeOf,
  type WasmKernelArgs,
} from './wasm_backend.js';

/**
 * Sum over leading axes (the bias gradient of every linear layer: `sum(dy [B*T, N], 0)`) as column
 * sums in one pass over the input. The wasm kernel first transposes the reduced axes to the end
 * (~8 ms for [1024, 1152] where the sum itself takes ~1 ms). Same order of float32 additions as
 * the wasm kernel (row by row, from 0), so the same result: in SIMD with core's fused kernels, else
 * a JS loop. Other axes keep the original kernel.
 */
export function sumConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<SumInputs, SumAttrs>) => {
    const { inputs, attrs, backend } = args;
    const x = inputs.x!;
    const rank = x.shape.length;
    // In the given order: the wasm kernel sums in that order, so [1, 0] is not the same as [0, 1].
    const axes = util.parseAxisParam(attrs.axis, x.shape);
    const leading = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
    if (x.dtype !== 'float32' || !leading) return callKernel(original, args);
    const rows = sizeOf(x.shape.slice(0, axes.length));
    const keptShape = x.shape.slice(axes.length);
    const columns = sizeOf(keptShape);
    const outShape = attrs.keepDims ? backend_util.expandShapeToKeepDim(keptShape, axes) : keptShape;
    const out = backend.makeOutput(outShape, 'float32');
    const fused = fusedKernelsFor(backend);
    if (fused !== null) {
      fused.columnSums(heapOffset(backend, x), heapOffset(backend, out), rows, columns);
      return out;
    }
    const heap = backend.wasm.HEAPF32;
    const o = heapIndex(backend, out);
    heap.fill(0, o, o + columns);
    let src = heapIndex(backend, x);
    for (let r = 0; r < rows; r++, src += columns) {
      for (let j = 0; j < columns; j++) heap[o + j] = heap[o + j]! + heap[src + j]!;
    }
    return out;
  });
  return { ...original, kernelName: Sum, backendName: 'wasm', kernelFunc };
}
