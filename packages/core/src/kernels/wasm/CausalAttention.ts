// Causal attention on wasm in two kernels (forward, backward) over core's SIMD GEMM and fused
// softmax: per batch and head, S = q·kᵀ only on and below the diagonal (tiles above it skipped),
// a masked softmax in one pass, P·v with each row panel's k range stopping at its diagonal; the
// backward the same way (dP, the softmax gradient, dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dO, each
// skipping what the mask makes zero: ~40% of attention's matmul work at 128 tokens). Queries are
// the last Tq of the Tk keys (keys before them: a prefix or a cache), as in core's attention.
//
// Two layouts of the same kernels: q, k, v as `[B, H, T, D]` tensors (`PeftCausalAttention`), or
// read in place from a fused projection's output `[B, T, 3·H·D]` (GPT-2's `c_attn`) with the output
// written as `[B, T, H·D]` (`PeftCausalSelfAttention`): the packing of core's GEMM takes any row
// stride, so the split into q, k, v, the transposes to and from heads and the gradients' concat
// (~30 ms of a bench step) are never done.
import type { KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { FusedKernels } from './simd/fused_kernels.js';
import { fusedKernelsFor, simdGemmFor } from './simd/simd_backend.js';
import type { MatrixLayout, SimdGemm } from './simd/simd_gemm.js';
import { asKernelFunc, heapOffset, type WasmBackend, type WasmKernelArgs } from './wasm_backend.js';

export const PEFT_CAUSAL_ATTENTION = 'PeftCausalAttention';
export const PEFT_CAUSAL_ATTENTION_GRAD = 'PeftCausalAttentionGrad';
export const PEFT_CAUSAL_SELF_ATTENTION = 'PeftCausalSelfAttention';
export const PEFT_CAUSAL_SELF_ATTENTION_GRAD = 'PeftCausalSelfAttentionGrad';

type Inputs = Record<string, TensorInfo>;

function engines(backend: WasmBackend) {
  const gemm = simdGemmFor(backend);
  const fused = fusedKernelsFor(backend);
  if (gemm === null || fused === null)
    throw new Error('core SIMD kernels are not available on this wasm backend');
  return { gemm, fused };
}

/** A `[rows, D]` float32 matrix in the heap: its first element and the bytes between rows. */
interface Rows {
  offset: number;
  stride: number;
}

function plain(m: Rows): MatrixLayout {
  return { offset: m.offset, rowStride: m.stride, colStride: 4 };
}
function transposed(m: Rows): MatrixLayout {
  return { offset: m.offset, rowStride: 4, colStride: m.stride };
}

/** Where pair `bh` (batch · heads + head) of q, k, v (or of their gradients) lies. */
type PairRows = (bh: number) => { q: Rows; k: Rows; v: Rows };

/** The sizes every pair shares: queries, keys (the queries their last Tq), head size. */
interface AttentionDims {
  pairs: number;
  tq: number;
  tk: number;
  d: number;
  scale: number;
}

function gridOrThrow(done: boolean): void {
  if (!done) throw new Error('PeftCausalAttention: queries and keys must be multiples of 4');
}

/** out = softmax(scale·q·kᵀ + causal mask)·v per pair; P kept at `probs` ([pairs, Tq, Tk]). */
function attendPairs(
  { gemm, fused }: { gemm: SimdGemm; fused: FusedKernels },
  { pairs, tq, tk, d, scale }: AttentionDims,
  operands: PairRows,
  out: (bh: number) => Rows,
  probs: number,
): void {
  const offset = tk - tq;
  for (let bh = 0; bh < pairs; bh++) {
    const { q, k, v } = operands(bh);
    const po = probs + bh * tq * tk * 4;
    // S = q·kᵀ on and below the diagonal, then P = masked softmax(scale·S) in place.
    gridOrThrow(gemm.gridMatmul(plain(q), transposed(k), po, tk * 4, tq, d, tk, 'outputLower', offset));
    fused.causalSoftmax(po, po, tq, tk, offset, scale);
    // out = P·v, each row panel's k stopping at its diagonal.
    const o = out(bh);
    gridOrThrow(
      gemm.gridMatmul(
        plain({ offset: po, stride: tk * 4 }),
        plain(v),
        o.offset,
        o.stride,
        tq,
        tk,
        d,
        'kLower',
        offset,
      ),
    );
  }
}

/** dq, dk, dv per pair from dO, the operands and the kept P; `ds` is [Tq, Tk] of scratch. */
function attendPairsGrad(
  { gemm, fused }: { gemm: SimdGemm; fused: FusedKernels },
  { pairs, tq, tk, d, scale }: AttentionDims,
  operands: PairRows,
  dy: (bh: number) => Rows,
  grads: PairRows,
  probs: number,
  ds: number,
): void {
  const offset = tk - tq;
  const dsRows = { offset: ds, stride: tk * 4 };
  for (let bh = 0; bh < pairs; bh++) {
    const { q, k, v } = operands(bh);
    const g = grads(bh);
    const dO = dy(bh);
    const p = { offset: probs + bh * tq * tk * 4, stride: tk * 4 };
    // dP = dO·vᵀ (on and below the diagonal), then dS = scale·P ⊙ (dP - Σ P·dP) in place.
    gridOrThrow(gemm.gridMatmul(plain(dO), transposed(v), ds, tk * 4, tq, d, tk, 'outputLower', offset));
    fused.causalSoftmaxGrad(p.offset, ds, ds, tq, tk, offset, scale);
    // dq = dS·k; dk = dSᵀ·q; dv = Pᵀ·dO (Sᵀ and Pᵀ are zero before each row's diagonal).
    gridOrThrow(
      gemm.gridMatmul(plain(dsRows), plain(k), g.q.offset, g.q.stride, tq, tk, d, 'kLower', offset),
    );
    gridOrThrow(
      gemm.gridMatmul(transposed(dsRows), plain(q), g.k.offset, g.k.stride, tk, tq, d, 'kUpper', offset),
    );
    gridOrThrow(
      gemm.gridMatmul(transposed(p), plain(dO), g.v.offset, g.v.stride, tk, tq, d, 'kUpper', offset),
    );
  }
}

/** Pairs of `[B, H, T, D]` q (Tq rows) and k, v (Tk rows) tensors at these heap offsets. */
function headMajor(tq: number, tk: number, d: number, q: number, k: number, v: number): PairRows {
  return (bh) => ({
    q: { offset: q + bh * tq * d * 4, stride: d * 4 },
    k: { offset: k + bh * tk * d * 4, stride: d * 4 },
    v: { offset: v + bh * tk * d * 4, stride: d * 4 },
  });
}

/** Pairs of q, k, v inside a `[B, T, 3, H, D]` projection at `base`. */
function packedQKV(heads: number, t: number, d: number, base: number): PairRows {
  const width = heads * d;
  return (bh) => {
    const b = Math.floor(bh / heads);
    const h = bh % heads;
    const q = base + (b * t * 3 * width + h * d) * 4;
    const stride = 3 * width * 4;
    return {
      q: { offset: q, stride },
      k: { offset: q + width * 4, stride },
      v: { offset: q + 2 * width * 4, stride },
    };
  };
}

/** Pair `bh`'s rows inside a `[B, T, H, D]` tensor at `base` (heads merged). */
function mergedHeads(heads: number, t: number, d: number, base: number): (bh: number) => Rows {
  return (bh) => {
    const b = Math.floor(bh / heads);
    const h = bh % heads;
    return { offset: base + (b * t * heads * d + h * d) * 4, stride: heads * d * 4 };
  };
}

/** Shapes: q [B, H, Tq, D], k and v [B, H, Tk, D]. */
function headMajorDims(q: TensorInfo, k: TensorInfo, scale: number): AttentionDims {
  const [batch, heads, tq, d] = q.shape as [number, number, number, number];
  return { pairs: batch * heads, tq, tk: k.shape[2]!, d, scale };
}

/** Shape: qkv [B, T, 3·H·D]. */
function packedDims(qkv: TensorInfo, heads: number, scale: number): AttentionDims & { batch: number } {
  const [batch, t, width3] = qkv.shape as [number, number, number];
  return { batch, pairs: batch * heads, tq: t, tk: t, d: width3 / 3 / heads, scale };
}

function attentionKernel(
  kernelName: string,
  run: (args: WasmKernelArgs<Inputs, NamedAttrMap>) => TensorInfo | TensorInfo[],
): KernelConfig {
  return { kernelName, backendName: 'wasm', kernelFunc: asKernelFunc(run) };
}

/** Runs `fn` with `[Tq, Tk]` floats of scratch (dS, one pair at a time), freed afterwards. */
function withScratch<T>(backend: WasmBackend, dims: AttentionDims, fn: (ds: number) => T): T {
  const ds = backend.makeOutput([dims.tq, dims.tk], 'float32');
  try {
    return fn(heapOffset(backend, ds));
  } finally {
    backend.disposeData(ds.dataId);
  }
}

const forwardConfig = attentionKernel(PEFT_CAUSAL_ATTENTION, ({ inputs, backend, attrs }) => {
  const { q, k, v } = inputs as Record<'q' | 'k' | 'v', TensorInfo>;
  const dims = headMajorDims(q, k, attrs.scale as number);
  const e = engines(backend); // before any output: nothing to free if SIMD is missing
  const out = backend.makeOutput(q.shape, 'float32');
  const probs = backend.makeOutput([...q.shape.slice(0, 3), dims.tk], 'float32');
  const at = (x: TensorInfo) => heapOffset(backend, x);
  const o = at(out);
  attendPairs(
    e,
    dims,
    headMajor(dims.tq, dims.tk, dims.d, at(q), at(k), at(v)),
    (bh) => ({ offset: o + bh * dims.tq * dims.d * 4, stride: dims.d * 4 }),
    at(probs),
  );
  return [out, probs];
});

const backwardConfig = attentionKernel(PEFT_CAUSAL_ATTENTION_GRAD, ({ inputs, backend, attrs }) => {
  const { dy, q, k, v, probs } = inputs as Record<'dy' | 'q' | 'k' | 'v' | 'probs', TensorInfo>;
  const dims = headMajorDims(q, k, attrs.scale as number);
  const e = engines(backend); // before any output: nothing to free if SIMD is missing
  const [dq, dk, dv] = [q, k, v].map((x) => backend.makeOutput(x.shape, 'float32')) as [
    TensorInfo,
    TensorInfo,
    TensorInfo,
  ];
  const at = (x: TensorInfo) => heapOffset(backend, x);
  const dyo = at(dy);
  withScratch(backend, dims, (ds) =>
    attendPairsGrad(
      e,
      dims,
      headMajor(dims.tq, dims.tk, dims.d, at(q), at(k), at(v)),
      (bh) => ({ offset: dyo + bh * dims.tq * dims.d * 4, stride: dims.d * 4 }),
      headMajor(dims.tq, dims.tk, dims.d, at(dq), at(dk), at(dv)),
      at(probs),
      ds,
    ),
  );
  return [dq, dk, dv];
});

const selfForwardConfig = attentionKernel(PEFT_CAUSAL_SELF_ATTENTION, ({ inputs, backend, attrs }) => {
  const { qkv } = inputs as { qkv: TensorInfo };
  const heads = attrs.heads as number;
  const dims = packedDims(qkv, heads, attrs.scale as number);
  const e = engines(backend); // before any output: nothing to free if SIMD is missing
  const out = backend.makeOutput([dims.batch, dims.tq, heads * dims.d], 'float32');
  const probs = backend.makeOutput([dims.batch, heads, dims.tq, dims.tk], 'float32');
  const at = (x: TensorInfo) => heapOffset(backend, x);
  attendPairs(
    e,
    dims,
    packedQKV(heads, dims.tq, dims.d, at(qkv)),
    mergedHeads(heads, dims.tq, dims.d, at(out)),
    at(probs),
  );
  return [out, probs];
});

const selfBackwardConfig = attentionKernel(PEFT_CAUSAL_SELF_ATTENTION_GRAD, ({ inputs, backend, attrs }) => {
  const { dy, qkv, probs } = inputs as Record<'dy' | 'qkv' | 'probs', TensorInfo>;
  const heads = attrs.heads as number;
  const dims = packedDims(qkv, heads, attrs.scale as number);
  const e = engines(backend); // before any output: nothing to free if SIMD is missing
  const dqkv = backend.makeOutput(qkv.shape, 'float32');
  const at = (x: TensorInfo) => heapOffset(backend, x);
  withScratch(backend, dims, (ds) =>
    attendPairsGrad(
      e,
      dims,
      packedQKV(heads, dims.tq, dims.d, at(qkv)),
      mergedHeads(heads, dims.tq, dims.d, at(dy)),
      packedQKV(heads, dims.tq, dims.d, at(dqkv)),
      at(probs),
      ds,
    ),
  );
  return dqkv;
});

export const causalAttentionKernelConfigs: readonly KernelConfig[] = [
  forwardConfig,
  backwardConfig,
  selfForwardConfig,
  selfBackwardConfig,
];
