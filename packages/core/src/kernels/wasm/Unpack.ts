import {
  type KernelConfig,
  type TensorInfo,
  Unpack,
  type UnpackAttrs,
  type UnpackInputs,
} from '@tensorflow/tfjs-core';
import { sliceImpl } from './Slice.js';
import { asKernelFunc, callKernel, type WasmKernelArgs } from './wasm_backend.js';

/** Unpack (unstack) through the fast slice: the wasm kernel copied the whole input once per output. */
export function unpackConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<UnpackInputs, UnpackAttrs>) => {
    const { inputs, attrs, backend } = args;
    const value = inputs.value!;
    if (value.dtype === 'string') return callKernel(original, args);
    const rank = value.shape.length;
    const axis = attrs.axis < 0 ? attrs.axis + rank : attrs.axis;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const size = value.shape.slice();
    size[axis] = 1;
    const begin = new Array<number>(rank).fill(0);
    const outs: TensorInfo[] = [];
    for (let i = 0; i < value.shape[axis]!; i++) {
      begin[axis] = i;
      const t = sliceImpl(backend, value, begin, size);
      outs.push({ ...t, shape: outShape });
    }
    return outs;
  });
  return { ...original, kernelName: Unpack, backendName: 'wasm', kernelFunc };
}
