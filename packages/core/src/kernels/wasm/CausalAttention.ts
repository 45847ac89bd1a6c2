// Causal attention on wasm in two kernels (forward, backward) over core's SIMD GEMM and fused
// softmax: per batch and head, S = q·kᵀ only on and below the diagonal (tiles above it skipped),
// a masked softmax in one pass, P·v with each row panel's k range stopping at its diagonal; the
// backward the same way (dP, the softmax gradient, dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dO, each
// skipping what the mask makes zero: ~40% of attention's matmul work at 128 tokens). Queries are
// the last Tq of the Tk keys (keys before them: a prefix or a cache), as in core's attention.
import type { KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { fusedKernelsFor, simdGemmFor } from './simd/simd_backend.js';
import type { MatrixLayout } from './simd/simd_gemm.js';
import { asKernelFunc, heapOffset, type WasmBackend, type WasmKernelArgs } from './wasm_backend.js';

export const PEFT_CAUSAL_ATTENTION = 'PeftCausalAttention';
export const PEFT_CAUSAL_ATTENTION_GRAD = 'PeftCausalAttentionGrad';

type Inputs = Record<string, TensorInfo>;

function engines(backend: WasmBackend) {
  const gemm = simdGemmFor(backend);
  const fused = fusedKernelsFor(backend);
  if (gemm === null || fused === null)
    throw new Error('core SIMD kernels are not available on this wasm backend');
  return { gemm, fused };
}

/** Rows of a [.., rows, cols] float32 matrix at `offset` bytes, read plainly or transposed. */
function plain(offset: number, cols: number): MatrixLayout {
  return { offset, rowStride: cols * 4, colStride: 4 };
}
function transposed(offset: number, cols: number): MatrixLayout {
  return { offset, rowStride: 4, colStride: cols * 4 };
}

/** Shapes: q [B, H, Tq, D], k and v [B, H, Tk, D]. */
function dims(q: TensorInfo, k: TensorInfo) {
  const [batch, heads, tq, d] = q.shape as [number, number, number, number];
  const tk = k.shape[2]!;
  return { pairs: batch * heads, tq, tk, d, offset: tk - tq };
}

function gridOrThrow(done: boolean): void {
  if (!done) throw new Error('PeftCausalAttention: queries and keys must be multiples of 4');
}

const forwardConfig: KernelConfig = {
  kernelName: PEFT_CAUSAL_ATTENTION,
  backendName: 'wasm',
  kernelFunc: asKernelFunc(({ inputs, backend, attrs }: WasmKernelArgs<Inputs, NamedAttrMap>) => {
    const { q, k, v } = inputs as { q: TensorInfo; k: TensorInfo; v: TensorInfo };
    const scale = attrs.scale as number;
    const { gemm, fused } = engines(backend);
    const { pairs, tq, tk, d, offset } = dims(q, k);
    const out = backend.makeOutput(q.shape, 'float32');
    const probs = backend.makeOutput([...q.shape.slice(0, 3), tk], 'float32');
    const [qBase, kBase, vBase, oBase, pBase] = [q, k, v, out, probs].map((t) => heapOffset(backend, t)) as [
      number,
      number,
      number,
      number,
      number,
    ];
    for (let bh = 0; bh < pairs; bh++) {
      const qo = qBase + bh * tq * d * 4;
      const ko = kBase + bh * tk * d * 4;
      const vo = vBase + bh * tk * d * 4;
      const po = pBase + bh * tq * tk * 4;
      // S = q·kᵀ on and below the diagonal, then P = masked softmax(scale·S) in place.
      gridOrThrow(
        gemm.gridMatmul(plain(qo, d), transposed(ko, d), po, tk * 4, tq, d, tk, 'outputLower', offset),
      );
      fused.causalSoftmax(po, po, tq, tk, offset, scale);
      // out = P·v, each row panel's k stopping at its diagonal.
      gridOrThrow(
        gemm.gridMatmul(
          plain(po, tk),
          plain(vo, d),
          oBase + bh * tq * d * 4,
          d * 4,
          tq,
          tk,
          d,
          'kLower',
          offset,
        ),
      );
    }
    return [out, probs];
  }),
};

const backwardConfig: KernelConfig = {
  kernelName: PEFT_CAUSAL_ATTENTION_GRAD,
  backendName: 'wasm',
  kernelFunc: asKernelFunc(({ inputs, backend, attrs }: WasmKernelArgs<Inputs, NamedAttrMap>) => {
    const { dy, q, k, v, probs } = inputs as {
      dy: TensorInfo;
      q: TensorInfo;
      k: TensorInfo;
      v: TensorInfo;
      probs: TensorInfo;
    };
    const scale = attrs.scale as number;
    const { gemm, fused } = engines(backend);
    const { pairs, tq, tk, d, offset } = dims(q, k);
    const dq = backend.makeOutput(q.shape, 'float32');
    const dk = backend.makeOutput(k.shape, 'float32');
    const dv = backend.makeOutput(v.shape, 'float32');
    const ds = backend.makeOutput([tq, tk], 'float32'); // scratch, one pair at a time
    try {
      const [dyBase, qBase, kBase, vBase, pBase, dqBase, dkBase, dvBase, dsBase] = [
        dy,
        q,
        k,
        v,
        probs,
        dq,
        dk,
        dv,
        ds,
      ].map((t) => heapOffset(backend, t)) as [
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      for (let bh = 0; bh < pairs; bh++) {
        const qOff = bh * tq * d * 4;
        const kOff = bh * tk * d * 4;
        const po = pBase + bh * tq * tk * 4;
        // dP = dO·vᵀ (on and below the diagonal), then dS = scale·P ⊙ (dP - Σ P·dP) in place.
        gridOrThrow(
          gemm.gridMatmul(
            plain(dyBase + qOff, d),
            transposed(vBase + kOff, d),
            dsBase,
            tk * 4,
            tq,
            d,
            tk,
            'outputLower',
            offset,
          ),
        );
        fused.causalSoftmaxGrad(po, dsBase, dsBase, tq, tk, offset, scale);
        // dq = dS·k; dk = dSᵀ·q; dv = Pᵀ·dO (Sᵀ and Pᵀ are zero before each row's diagonal).
        gridOrThrow(
          gemm.gridMatmul(
            plain(dsBase, tk),
            plain(kBase + kOff, d),
            dqBase + qOff,
            d * 4,
            tq,
            tk,
            d,
            'kLower',
            offset,
          ),
        );
        gridOrThrow(
          gemm.gridMatmul(
            transposed(dsBase, tk),
            plain(qBase + qOff, d),
            dkBase + kOff,
            d * 4,
            tk,
            tq,
            d,
            'kUpper',
            offset,
          ),
        );
        gridOrThrow(
          gemm.gridMatmul(
            transposed(po, tk),
            plain(dyBase + qOff, d),
            dvBase + kOff,
            d * 4,
            tk,
            tq,
            d,
            'kUpper',
            offset,
          ),
        );
      }
    } finally {
      backend.disposeData(ds.dataId);
    }
    return [dq, dk, dv];
  }),
};

export const causalAttentionKernelConfigs: readonly KernelConfig[] = [forwardConfig, backwardConfig];
