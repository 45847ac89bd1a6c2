import {
  type KernelConfig,
  Slice,
  type SliceAttrs,
  type SliceInputs,
  slice_util,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { copyStrided } from './strided_copy.js';
import {
  asKernelFunc,
  callKernel,
  heapElements,
  heapIndex,
  sizeOf,
  stridesOf,
  type WasmBackend,
  type WasmKernelArgs,
} from './wasm_backend.js';

/**
 * Slice without the wasm kernel's two slow spots: it copies the whole input out of the heap
 * (`readSync`) on every call, so `split`/`unstack` into n parts cost n full copies, and a
 * non-contiguous slice of rank > 4 goes through tfjs' per-element JS fallback (a 5-D split on a
 * middle axis took 1.4 s). Here every slice is a strided copy of contiguous runs inside the heap.
 * String tensors keep the original kernel.
 */
export function sliceImpl(backend: WasmBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  if (sizeOf(size) === 0) return out;
  const strides = stridesOf(x.shape);
  let src = heapIndex(backend, x);
  for (let k = 0; k < begin.length; k++) src += begin[k]! * strides[k]!;
  copyStrided(heapElements(backend, x.dtype), src, strides, heapIndex(backend, out), stridesOf(size), size);
  return out;
}

export function sliceConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<SliceInputs, SliceAttrs>) => {
    const x = args.inputs.x!;
    if (x.dtype === 'string') return callKernel(original, args);
    const [begin, size] = slice_util.parseSliceParams(x, args.attrs.begin, args.attrs.size) as [
      number[],
      number[],
    ];
    return sliceImpl(args.backend, x, begin, size);
  });
  return { ...original, kernelName: Slice, backendName: 'wasm', kernelFunc };
}
