import {
  backend_util,
  GatherV2,
  type GatherV2Attrs,
  type GatherV2Inputs,
  type KernelConfig,
  util,
} from '@tensorflow/tfjs-core';
import { copyStrided } from './strided_copy.js';
import {
  asKernelFunc,
  callKernel,
  heapElements,
  heapIndex,
  sizeOf,
  type WasmKernelArgs,
} from './wasm_backend.js';

/**
 * GatherV2 as row copies. The wasm kernel computes each output element's source through strides in
 * a scalar C++ loop (~35 ms to gather 1024 rows of 384 floats); an embedding lookup is one memmove
 * per index here. Same index check as the wasm kernel (out-of-range indices throw).
 */
export function gatherV2Config(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<GatherV2Inputs, GatherV2Attrs>) => {
    const { inputs, attrs, backend } = args;
    const x = inputs.x!;
    const indices = inputs.indices!;
    if (x.dtype === 'string' || indices.dtype !== 'int32') return callKernel(original, args);
    const axis = util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const info = backend_util.segment_util.collectGatherOpShapeInfo(
      x as never,
      indices as never,
      axis,
      attrs.batchDims,
    );
    const { batchSize, outerSize, dimSize, sliceSize } = info;
    const numIndices = sizeOf(indices.shape) / Math.max(batchSize, 1);
    const out = backend.makeOutput(info.outputShape, x.dtype);
    if (sizeOf(info.outputShape) === 0 || sizeOf(x.shape) === 0) return out;
    const ids = backend.wasm.HEAP32;
    const idsStart = heapIndex(backend, indices);
    for (let i = 0; i < batchSize * numIndices; i++) {
      const index = ids[idsStart + i]!;
      util.assert(
        index <= dimSize - 1 && index >= 0,
        () => `GatherV2: the index value ${index} is not in [0, ${dimSize - 1}]`,
      );
    }
    const heap = heapElements(backend, x.dtype);
    const xStart = heapIndex(backend, x);
    const outStart = heapIndex(backend, out);
    for (let b = 0; b < batchSize; b++) {
      for (let j = 0; j < numIndices; j++) {
        const index = ids[idsStart + b * numIndices + j]!;
        // All `outerSize` slices of this index: x [b, o, index, :] -> out [b, o, j, :].
        copyStrided(
          heap,
          xStart + (b * outerSize * dimSize + index) * sliceSize,
          [dimSize * sliceSize, 1],
          outStart + (b * outerSize * numIndices + j) * sliceSize,
          [numIndices * sliceSize, 1],
          [outerSize, sliceSize],
        );
      }
    }
    return out;
  });
  return { ...original, kernelName: GatherV2, backendName: 'wasm', kernelFunc };
}
