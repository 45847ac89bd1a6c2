/**
 * Strided copies inside the wasm heap, the shared core of the data-movement kernels (Slice,
 * Transpose, Tile, Pad, Gather). Contiguous runs go through `copyWithin` (a memmove, no allocation);
 * short runs are copied element by element, which is cheaper than a call for a few elements.
 */
export type HeapView = Int32Array | Uint8Array | Float32Array;

/** Below this many elements a run is copied in a JS loop instead of by `copyWithin`. */
const SHORT_RUN = 24;

function copyRun(heap: HeapView, dst: number, src: number, length: number): void {
  if (length > SHORT_RUN) {
    heap.copyWithin(dst, src, src + length);
  } else {
    for (let j = 0; j < length; j++) heap[dst + j] = heap[src + j]!;
  }
}

/**
 * For every index `i` of `shape`: `heap[dst + i·dstStrides] = heap[src + i·srcStrides]` (strides
 * in elements; source and destination must not overlap). Dimensions are merged where both sides
 * are contiguous across them, so the loop runs over the fewest, longest runs.
 */
export function copyStrided(
  heap: HeapView,
  src: number,
  srcStrides: readonly number[],
  dst: number,
  dstStrides: readonly number[],
  shape: readonly number[],
): void {
  const dims: number[] = [];
  const sStr: number[] = [];
  const dStr: number[] = [];
  for (let k = 0; k < shape.length; k++) {
    const n = shape[k]!;
    if (n === 0) return;
    if (n === 1) continue;
    const last = dims.length - 1;
    // Merge into the previous (outer) dim when it steps exactly over this whole dim on both sides.
    if (last >= 0 && sStr[last] === srcStrides[k]! * n && dStr[last] === dstStrides[k]! * n) {
      dims[last] = dims[last]! * n;
      sStr[last] = srcStrides[k]!;
      dStr[last] = dstStrides[k]!;
    } else {
      dims.push(n);
      sStr.push(srcStrides[k]!);
      dStr.push(dstStrides[k]!);
    }
  }
  let run = 1;
  if (dims.length > 0 && sStr[dims.length - 1] === 1 && dStr[dims.length - 1] === 1) {
    run = dims.pop()!;
    sStr.pop();
    dStr.pop();
  }
  const rank = dims.length;
  if (rank === 0) {
    copyRun(heap, dst, src, run);
    return;
  }
  if (rank === 1) {
    const n = dims[0]!;
    const ss = sStr[0]!;
    const ds = dStr[0]!;
    if (run === 1) {
      for (let i = 0; i < n; i++) heap[dst + i * ds] = heap[src + i * ss]!;
    } else {
      for (let i = 0; i < n; i++) copyRun(heap, dst + i * ds, src + i * ss, run);
    }
    return;
  }
  // Odometer over the outer dims; the innermost of them is a plain loop.
  const inner = rank - 1;
  const n = dims[inner]!;
  const ss = sStr[inner]!;
  const ds = dStr[inner]!;
  const index = new Array<number>(inner).fill(0);
  let s = src;
  let d = dst;
  for (;;) {
    if (run === 1) {
      for (let i = 0; i < n; i++) heap[d + i * ds] = heap[s + i * ss]!;
    } else {
      for (let i = 0; i < n; i++) copyRun(heap, d + i * ds, s + i * ss, run);
    }
    let k = inner - 1;
    for (; k >= 0; k--) {
      s += sStr[k]!;
      d += dStr[k]!;
      index[k] = index[k]! + 1;
      if (index[k]! < dims[k]!) break;
      s -= sStr[k]! * dims[k]!;
      d -= dStr[k]! * dims[k]!;
      index[k] = 0;
    }
    if (k < 0) return;
  }
}

/**
 * Repeats the `length` elements at `start` so that `reps` copies lie back to back, doubling the
 * copied region each step (log2(reps) memmoves).
 */
export function replicate(heap: HeapView, start: number, length: number, reps: number): void {
  const total = length * reps;
  let filled = length;
  while (filled < total) {
    const n = Math.min(filled, total - filled);
    copyRun(heap, start + filled, start, n);
    filled += n;
  }
}
