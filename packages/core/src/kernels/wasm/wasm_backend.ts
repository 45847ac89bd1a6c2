import type { DataType, KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

/**
 * The parts of tfjs-backend-wasm 4.22's `BackendWasm` that the kernels here use. They are public at
 * runtime but not all typed (`dataIdNextNumber` is private), so kernels go through these helpers.
 */
export interface WasmBackend extends KernelBackend {
  wasm: WasmModule;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  incRef(dataId: object): void;
  disposeData(dataId: object, force?: boolean): boolean;
}

export interface WasmModule {
  HEAPU8: Uint8Array;
  HEAP32: Int32Array;
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  // biome-ignore lint/suspicious/noExplicitAny: emscripten exports every C kernel as `_Name(...numbers)`.
  [cFunction: `_${string}`]: any;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

/** What a kernel function of this folder receives (tfjs passes the backend untyped). */
export interface WasmKernelArgs<Inputs, Attrs> {
  inputs: Inputs;
  backend: WasmBackend;
  attrs: Attrs;
}

/** Typed kernel function to the registry's `KernelFunc` (tfjs kernels do the same cast). */
export function asKernelFunc<Inputs, Attrs>(
  f: (args: WasmKernelArgs<Inputs, Attrs>) => TensorInfo | TensorInfo[],
): KernelFunc {
  return f as unknown as KernelFunc;
}

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(backend: WasmBackend, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (data === undefined) throw new Error('wasm kernel: tensor is not on the wasm backend');
  return data.memoryOffset;
}

/** Bytes per element of the dtypes that live in the wasm heap. */
export function bytesPerElement(dtype: DataType): 1 | 4 {
  if (dtype === 'bool') return 1;
  if (dtype === 'float32' || dtype === 'int32') return 4;
  throw new Error(`wasm kernel: unsupported dtype ${dtype}`);
}

/**
 * A view of the whole heap with one element per tensor element, for copying (bits are copied
 * exactly: 4-byte dtypes go through Int32Array). Index = byte offset / bytesPerElement.
 * Views go stale when the heap grows: take a fresh one after any call that may allocate.
 */
export function heapElements(backend: WasmBackend, dtype: DataType): Int32Array | Uint8Array {
  return bytesPerElement(dtype) === 4 ? backend.wasm.HEAP32 : backend.wasm.HEAPU8;
}

/** Element index in `heapElements(backend, t.dtype)` of the tensor's first element. */
export function heapIndex(backend: WasmBackend, t: TensorInfo): number {
  return heapOffset(backend, t) / bytesPerElement(t.dtype);
}

/**
 * Registers `size` elements at `byteOffset` (inside an existing tensor) as a tensor of the C++
 * side, so that C++ kernels can read or write a sub-block without a copy. Free with `disposeView`,
 * which also drops XNNPACK operators cached on the id; the memory stays with its owner.
 */
export function registerView(backend: WasmBackend, byteOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, byteOffset);
  return id;
}

export function disposeView(backend: WasmBackend, id: number): void {
  backend.wasm.tfjs.disposeData(id);
}

/** The same data under another shape, for passing as a kernel input (no refcount taken). */
export function withShape(t: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

/** Row-major strides (in elements) of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= shape[i]!;
  }
  return strides;
}

/** Calls a kernel function (for example the one an override replaces) with typed arguments. */
export function callKernel(
  config: KernelConfig,
  args: { inputs: object; backend: WasmBackend; attrs?: object },
): TensorInfo | TensorInfo[] {
  return config.kernelFunc(args as unknown as Parameters<KernelFunc>[0]);
}
