// Attention over a preallocated key/value cache on wasm, for generation: `PeftKVWrite` writes a
// step's keys or values into a cache buffer in place (O(new tokens), not O(cached): no
// concatenation, no new buffer per step), and `PeftCachedAttention` attends to the buffer's first
// `length` positions through strides (the buffer is never sliced). Inference only: no gradients.
import type { KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { fusedKernelsFor, simdGemmFor } from './simd/simd_backend.js';
import type { MatrixLayout } from './simd/simd_gemm.js';
import { asKernelFunc, heapElements, heapIndex, heapOffset, type WasmKernelArgs } from './wasm_backend.js';

export const PEFT_KV_WRITE = 'PeftKVWrite';
export const PEFT_CACHED_ATTENTION = 'PeftCachedAttention';

type Inputs = Record<string, TensorInfo>;

/**
 * PeftKVWrite: `buffer [B, H, capacity, D]`, `values [B, H, T, D]`, attr `position`: rows
 * `position .. position + T` of every (batch, head) are overwritten with `values`, in place; the
 * output is the buffer itself (same data).
 */
const writeConfig: KernelConfig = {
  kernelName: PEFT_KV_WRITE,
  backendName: 'wasm',
  kernelFunc: asKernelFunc(({ inputs, backend, attrs }: WasmKernelArgs<Inputs, NamedAttrMap>) => {
    const { buffer, values } = inputs as { buffer: TensorInfo; values: TensorInfo };
    const position = attrs.position as number;
    const [b, h, capacity, d] = buffer.shape as [number, number, number, number];
    const t = values.shape[2]!;
    if (position < 0 || position + t > capacity) {
      throw new Error(`PeftKVWrite: positions ${position}..${position + t} past the capacity ${capacity}`);
    }
    const heap = heapElements(backend, 'float32');
    const dst = heapIndex(backend, buffer);
    const src = heapIndex(backend, values);
    for (let pair = 0; pair < b * h; pair++) {
      const from = src + pair * t * d;
      heap.copyWithin(dst + (pair * capacity + position) * d, from, from + t * d);
    }
    backend.incRef(buffer.dataId);
    return { dataId: buffer.dataId, shape: buffer.shape, dtype: buffer.dtype };
  }),
};

/**
 * PeftCachedAttention: `q [B, H, Tq, D]` over the first `length` positions of `keys, values
 * [B, Hkv, capacity, D]` (heads a multiple of Hkv: grouped-query heads share their key/value head),
 * queries being the last Tq of those positions (causal), attr `scale`. Output `[B, H, Tq, D]`.
 */
const attentionConfig: KernelConfig = {
  kernelName: PEFT_CACHED_ATTENTION,
  backendName: 'wasm',
  kernelFunc: asKernelFunc(({ inputs, backend, attrs }: WasmKernelArgs<Inputs, NamedAttrMap>) => {
    const { q, keys, values } = inputs as { q: TensorInfo; keys: TensorInfo; values: TensorInfo };
    const length = attrs.length as number;
    const scale = attrs.scale as number;
    const gemm = simdGemmFor(backend);
    const fused = fusedKernelsFor(backend);
    if (gemm === null || fused === null)
      throw new Error('core SIMD kernels are not available on this wasm backend');
    const [batch, heads, tq, d] = q.shape as [number, number, number, number];
    const [, kvHeads, capacity] = keys.shape as [number, number, number, number];
    const groups = heads / kvHeads;
    const offset = length - tq;
    const out = backend.makeOutput(q.shape, 'float32');
    const scores = backend.makeOutput([tq, length], 'float32');
    try {
      const qBase = heapOffset(backend, q);
      const kBase = heapOffset(backend, keys);
      const vBase = heapOffset(backend, values);
      const oBase = heapOffset(backend, out);
      const sBase = heapOffset(backend, scores);
      const plain = (offsetBytes: number, cols: number): MatrixLayout => ({
        offset: offsetBytes,
        rowStride: cols * 4,
        colStride: 4,
      });
      for (let bi = 0; bi < batch; bi++) {
        for (let hi = 0; hi < heads; hi++) {
          const pair = bi * heads + hi;
          const kvPair = bi * kvHeads + Math.floor(hi / groups);
          const qOff = qBase + pair * tq * d * 4;
          const kOff = kBase + kvPair * capacity * d * 4;
          const vOff = vBase + kvPair * capacity * d * 4;
          // S = q·kᵀ over the cached rows (kᵀ: rows of the buffer read as columns).
          gemm.matmul(plain(qOff, d), { offset: kOff, rowStride: 4, colStride: d * 4 }, sBase, tq, d, length);
          fused.causalSoftmax(sBase, sBase, tq, length, offset, scale);
          gemm.matmul(plain(sBase, length), plain(vOff, d), oBase + pair * tq * d * 4, tq, length, d);
        }
      }
    } finally {
      backend.disposeData(scores.dataId);
    }
    return out;
  }),
};

export const cachedAttentionKernelConfigs: readonly KernelConfig[] = [writeConfig, attentionConfig];
