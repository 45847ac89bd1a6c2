import { type KernelConfig, PadV2, type PadV2Attrs, type PadV2Inputs } from '@tensorflow/tfjs-core';
import { copyStrided } from './strided_copy.js';
import {
  asKernelFunc,
  callKernel,
  heapIndex,
  sizeOf,
  stridesOf,
  type WasmKernelArgs,
} from './wasm_backend.js';

/**
 * PadV2 (constant padding; the gradient of slice) as a fill plus one strided copy of the input's
 * contiguous runs. The wasm kernel walks the output element by element.
 */
export function padV2Config(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<PadV2Inputs, PadV2Attrs>) => {
    const { inputs, attrs, backend } = args;
    const x = inputs.x!;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return callKernel(original, args);
    const { paddings, constantValue } = attrs;
    const outShape = paddings.map(([before, after], i) => before + x.shape[i]! + after);
    const out = backend.makeOutput(outShape, x.dtype);
    const total = sizeOf(outShape);
    if (total === 0) return out;
    const outStart = heapIndex(backend, out);
    const values = x.dtype === 'float32' ? backend.wasm.HEAPF32 : backend.wasm.HEAP32;
    values.fill(constantValue, outStart, outStart + total);
    if (sizeOf(x.shape) === 0) return out;
    const outStrides = stridesOf(outShape);
    let dst = outStart;
    for (let k = 0; k < paddings.length; k++) dst += paddings[k]![0] * outStrides[k]!;
    copyStrided(backend.wasm.HEAP32, heapIndex(backend, x), stridesOf(x.shape), dst, outStrides, x.shape);
    return out;
  });
  return { ...original, kernelName: PadV2, backendName: 'wasm', kernelFunc };
}
