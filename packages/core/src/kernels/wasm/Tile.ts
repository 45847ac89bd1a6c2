import { type KernelConfig, Tile, type TileAttrs, type TileInputs } from '@tensorflow/tfjs-core';
import { copyStrided, type HeapView, replicate } from './strided_copy.js';
import {
  asKernelFunc,
  callKernel,
  heapElements,
  heapIndex,
  sizeOf,
  stridesOf,
  type WasmKernelArgs,
} from './wasm_backend.js';

/**
 * Tile as block copies. The wasm kernel computes every output element's source index in a scalar
 * loop (~100 ms to tile a [1, 1, 128, 128] mask to [8, 6, 128, 128]); `broadcastTo` and `where` with
 * broadcasting go through Tile. Here each input row is copied once and the tiled blocks are
 * replicated with doubling memmoves. String tensors keep the original kernel.
 */
export function tileConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<TileInputs, TileAttrs>) => {
    const { inputs, attrs, backend } = args;
    const x = inputs.x!;
    if (x.dtype === 'string') return callKernel(original, args);
    const outShape = x.shape.map((d, i) => d * attrs.reps[i]!);
    const out = backend.makeOutput(outShape, x.dtype);
    if (sizeOf(outShape) === 0) return out;
    // After merging, every dim but the last has a repeated inner neighbour.
    const [shape, reps] = mergeUnrepeated(x.shape, attrs.reps);
    if (shape.length === 0) return callKernel(original, args);
    const outStrides = stridesOf(shape.map((d, i) => d * reps[i]!));
    const heap = heapElements(backend, x.dtype);
    tileDim(
      heap,
      heapIndex(backend, x),
      shape,
      stridesOf(shape),
      heapIndex(backend, out),
      outStrides,
      reps,
      0,
    );
    return out;
  });
  return { ...original, kernelName: Tile, backendName: 'wasm', kernelFunc };
}

/** Writes the tiling of x's sub-block at dim `d` (x at `src`) to the output at `dst`. */
function tileDim(
  heap: HeapView,
  src: number,
  shape: number[],
  strides: number[],
  dst: number,
  outStrides: number[],
  reps: number[],
  d: number,
): void {
  const n = shape[d]!;
  if (d === shape.length - 1) {
    copyStrided(heap, src, [1], dst, [1], [n]);
  } else {
    for (let i = 0; i < n; i++) {
      tileDim(heap, src + i * strides[d]!, shape, strides, dst + i * outStrides[d]!, outStrides, reps, d + 1);
    }
  }
  replicate(heap, dst, n * outStrides[d]!, reps[d]!);
}

/** Merges each dim with the next inner one when that one is not repeated (same tiling, lower rank). */
function mergeUnrepeated(shape: readonly number[], reps: readonly number[]): [number[], number[]] {
  const s: number[] = [];
  const r: number[] = [];
  for (let k = shape.length - 1; k >= 0; k--) {
    if (s.length > 0 && r[0] === 1) {
      s[0] = s[0]! * shape[k]!;
      r[0] = reps[k]!;
    } else {
      s.unshift(shape[k]!);
      r.unshift(reps[k]!);
    }
  }
  return [s, r];
}
