import {
  type KernelConfig,
  type TensorInfo,
  Transpose,
  type TransposeAttrs,
  type TransposeInputs,
} from '@tensorflow/tfjs-core';
import { copyStrided } from './strided_copy.js';
import {
  asKernelFunc,
  callKernel,
  heapElements,
  heapIndex,
  sizeOf,
  stridesOf,
  type WasmKernelArgs,
  withShape,
} from './wasm_backend.js';

/**
 * Transpose of rank >= 5. The wasm kernel has fast 2-D to 4-D code but a generic per-element loop
 * above (a `[B, T, 3, H, D] -> [3, B, H, T, D]` transpose: ~150 ms for 0.8M floats). Here a
 * permutation that reduces to rank <= 4 (size-1 dims dropped, input dims that stay adjacent in the
 * output merged) runs the wasm kernel on the reduced shape; any other is a strided copy of
 * contiguous runs (the last dim's, when it stays last).
 */
export function transposeConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<TransposeInputs, TransposeAttrs>) => {
    const { inputs, attrs, backend } = args;
    const x = inputs.x!;
    const perm = attrs.perm;
    if (x.dtype === 'string' || x.shape.length <= 4) return callKernel(original, args);
    const outShape = perm.map((p) => x.shape[p]!);
    const [shape, reducedPerm] = reduceTranspose(x.shape, perm);
    if (shape.length <= 4) {
      const out = original.kernelFunc({
        inputs: { x: withShape(x, shape) },
        backend,
        attrs: { perm: reducedPerm },
      }) as TensorInfo;
      out.shape = outShape;
      return out;
    }
    const out = backend.makeOutput(outShape, x.dtype);
    if (sizeOf(outShape) === 0) return out;
    const xStrides = stridesOf(x.shape);
    copyStrided(
      heapElements(backend, x.dtype),
      heapIndex(backend, x),
      perm.map((p) => xStrides[p]!),
      heapIndex(backend, out),
      stridesOf(outShape),
      outShape,
    );
    return out;
  });
  return { ...original, kernelName: Transpose, backendName: 'wasm', kernelFunc };
}

/**
 * The smallest transpose equivalent to `perm` on `shape`: size-1 dims dropped and runs of input
 * dims that stay adjacent and in order in the output merged. Returns [input shape, perm].
 */
export function reduceTranspose(shape: readonly number[], perm: readonly number[]): [number[], number[]] {
  // Output order of the input axes that are not size 1.
  const axes = perm.filter((p) => shape[p] !== 1);
  // Group input axes that follow each other (up to size-1 dims) in both input and output.
  const groups: number[][] = [];
  for (const a of axes) {
    const last = groups[groups.length - 1];
    const from = last?.[last.length - 1];
    if (last !== undefined && from !== undefined && from < a && onlyOnesBetween(shape, from, a)) last.push(a);
    else groups.push([a]);
  }
  const byInput = groups.map((_, i) => i).sort((i, j) => groups[i]![0]! - groups[j]![0]!);
  const reducedShape = byInput.map((g) => groups[g]!.reduce((n, a) => n * shape[a]!, 1));
  const position = new Array<number>(groups.length);
  byInput.forEach((g, i) => {
    position[g] = i;
  });
  return [reducedShape, groups.map((_, g) => position[g]!)];
}

function onlyOnesBetween(shape: readonly number[], from: number, to: number): boolean {
  for (let k = from + 1; k < to; k++) if (shape[k] !== 1) return false;
  return true;
}
