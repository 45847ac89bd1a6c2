import {
  backend_util,
  type KernelConfig,
  SplitV,
  type SplitVAttrs,
  type SplitVInputs,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import { sliceImpl } from './Slice.js';
import { asKernelFunc, callKernel, type WasmKernelArgs } from './wasm_backend.js';

/** SplitV through the fast slice (the wasm kernel calls its own Slice internally, not the registry). */
export function splitVConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<SplitVInputs, SplitVAttrs>) => {
    const { inputs, attrs, backend } = args;
    const x = inputs.x!;
    if (x.dtype === 'string') return callKernel(original, args);
    const axis = util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = backend_util.prepareSplitSize(x, attrs.numOrSizeSplits, axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    const outs: TensorInfo[] = [];
    for (const s of sizes) {
      const size = x.shape.slice();
      size[axis] = s;
      outs.push(sliceImpl(backend, x, begin.slice(), size));
      begin[axis] = begin[axis]! + s;
    }
    return outs;
  });
  return { ...original, kernelName: SplitV, backendName: 'wasm', kernelFunc };
}
