import {
  type KernelConfig,
  UnsortedSegmentSum,
  type UnsortedSegmentSumAttrs,
  type UnsortedSegmentSumInputs,
  util,
} from '@tensorflow/tfjs-core';
import { asKernelFunc, heapIndex, sizeOf, type WasmKernelArgs } from './wasm_backend.js';

/**
 * UnsortedSegmentSum, missing from tfjs-wasm; it is the gradient of gather (embedding lookups).
 * `out[s, ...] = sum of x[i, ...] over i with segmentIds[i] = s`, out of shape
 * `[numSegments, ...x.shape.slice(segmentIds.rank)]`; ids outside [0, numSegments) are dropped (as
 * in TensorFlow). Each id adds one contiguous row of x into a row of the output, in place in the
 * wasm heap: O(x.size) adds, versus numSegments·x.size for a one-hot matmul.
 */
function unsortedSegmentSum(args: WasmKernelArgs<UnsortedSegmentSumInputs, UnsortedSegmentSumAttrs>) {
  const { inputs, backend, attrs } = args;
  const x = inputs.x!;
  const segmentIds = inputs.segmentIds!;
  const { numSegments } = attrs;
  util.assert(
    x.dtype === 'float32' || x.dtype === 'int32',
    () => `UnsortedSegmentSum: x must be float32 or int32, got ${x.dtype}`,
  );
  const idsRank = segmentIds.shape.length;
  util.assert(
    util.arraysEqual(segmentIds.shape, x.shape.slice(0, idsRank)),
    () => `UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must prefix x shape [${x.shape}]`,
  );
  const rowShape = x.shape.slice(idsRank);
  const rowSize = sizeOf(rowShape);
  const out = backend.makeOutput([numSegments, ...rowShape], x.dtype);
  const heap = x.dtype === 'float32' ? backend.wasm.HEAPF32 : backend.wasm.HEAP32;
  const outStart = heapIndex(backend, out);
  heap.fill(0, outStart, outStart + numSegments * rowSize);
  const numRows = sizeOf(segmentIds.shape);
  if (numRows === 0 || rowSize === 0) return out;
  const idsStart = heapIndex(backend, segmentIds);
  const ids = backend.wasm.HEAP32;
  const xStart = heapIndex(backend, x);
  for (let i = 0; i < numRows; i++) {
    const segment = ids[idsStart + i]!;
    if (segment < 0 || segment >= numSegments) continue;
    const src = xStart + i * rowSize;
    const dst = outStart + segment * rowSize;
    for (let j = 0; j < rowSize; j++) heap[dst + j] = heap[dst + j]! + heap[src + j]!;
  }
  return out;
}

export const unsortedSegmentSumConfig: KernelConfig = {
  kernelName: UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: asKernelFunc(unsortedSegmentSum),
};
