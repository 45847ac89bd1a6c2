// Kernels of core's own fused ops on wasm (names prefixed `Peft`), and their gradients. The ops in
// `../ops` run them when the wasm backend has them (`fusedKernelsFor`), else compose tfjs ops.
import {
  engine,
  type GradConfig,
  getGradient,
  getKernel,
  type KernelConfig,
  type NamedAttrMap,
  registerGradient,
  Softmax,
  type Tensor,
  type TensorInfo,
  zerosLike,
} from '@tensorflow/tfjs-core';
import type { FusedKernels } from './simd/fused_kernels.js';
import { fusedKernelsFor, simdGemmFor } from './simd/simd_backend.js';
import { asKernelFunc, heapOffset, sizeOf, type WasmBackend, type WasmKernelArgs } from './wasm_backend.js';

export const PEFT_GELU_NEW = 'PeftGeluNew';
export const PEFT_GELU_NEW_GRAD = 'PeftGeluNewGrad';
export const PEFT_LAYER_NORM = 'PeftLayerNorm';
export const PEFT_LAYER_NORM_GRAD = 'PeftLayerNormGrad';
export const PEFT_SOFTMAX = 'PeftSoftmax';
export const PEFT_SOFTMAX_GRAD = 'PeftSoftmaxGrad';
export const PEFT_CROSS_ENTROPY = 'PeftCrossEntropy';
export const PEFT_CROSS_ENTROPY_GRAD = 'PeftCrossEntropyGrad';

/**
 * Below this probability of the target, a row's loss is `logsumexp(x) - x[t]` from the logits (a
 * scalar pass over the row) rather than `-log p[t]`: p can underflow where the target's logit is
 * ~87 or more below the row's largest.
 */
const SMALLEST_TARGET_PROBABILITY = 1e-30;

type Inputs = Record<string, TensorInfo>;

function fused(backend: WasmBackend): FusedKernels {
  const kernels = fusedKernelsFor(backend);
  if (kernels === null) throw new Error('core fused kernels are not available on this wasm backend');
  return kernels;
}

function config(
  kernelName: string,
  run: (args: WasmKernelArgs<Inputs, NamedAttrMap>) => TensorInfo | TensorInfo[],
) {
  return { kernelName, backendName: 'wasm', kernelFunc: asKernelFunc(run) } satisfies KernelConfig;
}

const geluNewConfig = config(PEFT_GELU_NEW, ({ inputs, backend }) => {
  const x = inputs.x!;
  const y = backend.makeOutput(x.shape, 'float32');
  fused(backend).geluNew(heapOffset(backend, x), heapOffset(backend, y), sizeOf(x.shape));
  return y;
});

const geluNewGradConfig = config(PEFT_GELU_NEW_GRAD, ({ inputs, backend }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const dx = backend.makeOutput(x.shape, 'float32');
  fused(backend).geluNewGrad(
    heapOffset(backend, x),
    heapOffset(backend, dy),
    heapOffset(backend, dx),
    sizeOf(x.shape),
  );
  return dx;
});

const layerNormConfig = config(PEFT_LAYER_NORM, ({ inputs, backend, attrs }) => {
  const { x, gamma, beta } = inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
  const d = x.shape[x.shape.length - 1]!;
  const y = backend.makeOutput(x.shape, 'float32');
  fused(backend).layerNorm(
    heapOffset(backend, x),
    heapOffset(backend, gamma),
    heapOffset(backend, beta),
    heapOffset(backend, y),
    sizeOf(x.shape) / d,
    d,
    attrs.epsilon as number,
  );
  return y;
});

const layerNormGradConfig = config(PEFT_LAYER_NORM_GRAD, ({ inputs, backend, attrs }) => {
  const { x, gamma, dy } = inputs as { x: TensorInfo; gamma: TensorInfo; dy: TensorInfo };
  const d = x.shape[x.shape.length - 1]!;
  const dx = backend.makeOutput(x.shape, 'float32');
  const dgamma = backend.makeOutput([d], 'float32');
  const dbeta = backend.makeOutput([d], 'float32');
  fused(backend).layerNormGrad(
    heapOffset(backend, x),
    heapOffset(backend, gamma),
    heapOffset(backend, dy),
    heapOffset(backend, dx),
    heapOffset(backend, dgamma),
    heapOffset(backend, dbeta),
    sizeOf(x.shape) / d,
    d,
    attrs.epsilon as number,
  );
  return [dx, dgamma, dbeta];
});

/** Softmax over the last axis through the backend's own Softmax kernel (XNNPACK); only the gradient differs. */
const softmaxConfig = config(PEFT_SOFTMAX, (args) => {
  const logits = args.inputs.logits!;
  return getKernel(Softmax, 'wasm').kernelFunc({
    inputs: { logits },
    backend: args.backend,
    attrs: { dim: logits.shape.length - 1 },
  }) as TensorInfo;
});

const softmaxGradConfig = config(PEFT_SOFTMAX_GRAD, ({ inputs, backend }) => {
  const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
  const d = y.shape[y.shape.length - 1]!;
  const dx = backend.makeOutput(y.shape, 'float32');
  fused(backend).softmaxGrad(
    heapOffset(backend, y),
    heapOffset(backend, dy),
    heapOffset(backend, dx),
    sizeOf(y.shape) / d,
    d,
  );
  return dx;
});

/** logsumexp of `d` floats of `heap` from `start` (scalar; only for rows whose target underflows). */
function logSumExp(heap: Float32Array, start: number, d: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = start; j < start + d; j++) max = Math.max(max, heap[j]!);
  let sum = 0;
  for (let j = start; j < start + d; j++) sum += Math.exp(heap[j]! - max);
  return max + Math.log(sum);
}

/**
 * The mean cross-entropy of logits `[rows, d]` against int32 targets `[rows]` (rows whose target is
 * `ignoreIndex` count nothing; the op checks the rest are in [0, d) and passes their number as
 * `counted`), and the softmax, which the gradient keeps: the backend's Softmax kernel, then one
 * read of each row's target probability.
 */
const crossEntropyConfig = config(PEFT_CROSS_ENTROPY, ({ inputs, backend, attrs }) => {
  const { logits, targets } = inputs as { logits: TensorInfo; targets: TensorInfo };
  const [rows, d] = logits.shape as [number, number];
  const ignoreIndex = attrs.ignoreIndex as number;
  const probs = getKernel(Softmax, 'wasm').kernelFunc({
    inputs: { logits },
    backend,
    attrs: { dim: 1 },
  }) as TensorInfo;
  const heap = backend.wasm.HEAPF32;
  const ids = backend.wasm.HEAP32;
  const p = heapOffset(backend, probs) >>> 2;
  const x = heapOffset(backend, logits) >>> 2;
  const t = heapOffset(backend, targets) >>> 2;
  let sum = 0;
  for (let i = 0; i < rows; i++) {
    const target = ids[t + i]!;
    if (target === ignoreIndex) continue;
    const probability = heap[p + i * d + target]!;
    sum +=
      probability >= SMALLEST_TARGET_PROBABILITY
        ? -Math.log(probability)
        : logSumExp(heap, x + i * d, d) - heap[x + i * d + target]!;
  }
  const loss = backend.makeOutput([], 'float32');
  // A mean over no rows is NaN, as in PyTorch.
  backend.wasm.HEAPF32[heapOffset(backend, loss) >>> 2] = sum / (attrs.counted as number);
  return [loss, probs];
});

/** dlogits = dy/counted · (P - onehot(targets)), zero on ignored rows. */
const crossEntropyGradConfig = config(PEFT_CROSS_ENTROPY_GRAD, ({ inputs, backend, attrs }) => {
  const { probs, targets, dy } = inputs as { probs: TensorInfo; targets: TensorInfo; dy: TensorInfo };
  const [rows, d] = probs.shape as [number, number];
  // Rows whose target is outside [0, d) (ignored) get zero in the kernel.
  const scale = backend.wasm.HEAPF32[heapOffset(backend, dy) >>> 2]! / (attrs.counted as number);
  const dx = backend.makeOutput(probs.shape, 'float32');
  fused(backend).crossEntropyGrad(
    heapOffset(backend, probs),
    heapOffset(backend, targets),
    heapOffset(backend, dx),
    rows,
    d,
    scale,
  );
  return dx;
});

/** Kernels of the fused ops (wasm only). */
export const fusedKernelConfigs: readonly KernelConfig[] = [
  geluNewConfig,
  geluNewGradConfig,
  layerNormConfig,
  layerNormGradConfig,
  softmaxConfig,
  softmaxGradConfig,
  crossEntropyConfig,
  crossEntropyGradConfig,
];

const run = (name: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap = {}) =>
  engine().runKernel(name, inputs, attrs) as Tensor | Tensor[];

const gradients: readonly GradConfig[] = [
  {
    kernelName: PEFT_GELU_NEW,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({
      x: () => run(PEFT_GELU_NEW_GRAD, { x: saved[0]!, dy: dy as Tensor }) as Tensor,
    }),
  },
  {
    kernelName: PEFT_LAYER_NORM,
    inputsToSave: ['x', 'gamma'],
    gradFunc: (dy, saved, attrs) => {
      const [dx, dgamma, dbeta] = run(
        PEFT_LAYER_NORM_GRAD,
        { x: saved[0]!, gamma: saved[1]!, dy: dy as Tensor },
        attrs,
      ) as Tensor[];
      return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
    },
  },
  {
    kernelName: PEFT_CROSS_ENTROPY,
    inputsToSave: ['targets'],
    outputsToSave: [false, true],
    gradFunc: (dy, saved, attrs) => {
      const [targets, probs] = saved as [Tensor, Tensor];
      const dLoss = (dy as Tensor[])[0]!;
      return {
        logits: () => run(PEFT_CROSS_ENTROPY_GRAD, { probs, targets, dy: dLoss }, attrs) as Tensor,
        targets: () => zerosLike(targets),
      };
    },
  },
  {
    kernelName: PEFT_SOFTMAX,
    outputsToSave: [true],
    gradFunc: (dy, saved) => ({
      logits: () => run(PEFT_SOFTMAX_GRAD, { y: saved[0]!, dy: dy as Tensor }) as Tensor,
    }),
  },
];

/** Registers the fused ops' gradients (backend-independent; their kernels exist on wasm only). */
export function registerFusedGradients(): void {
  for (const gradient of gradients) {
    if (getGradient(gradient.kernelName) === undefined) registerGradient(gradient);
  }
}

/**
 * Whether a fused kernel can run on the active backend now (wasm, registered, SIMD available; with
 * `needsGemm`, core's GEMM in use too: not where tfjs runs XNNPACK on several threads).
 */
export function fusedKernelsActive(kernelName: string, needsGemm = false): boolean {
  const e = engine();
  if (e.backendName !== 'wasm' || getKernel(kernelName, 'wasm') === undefined) return false;
  const backend = e.backend as unknown as WasmBackend;
  if (needsGemm && simdGemmFor(backend) === null) return false;
  return fusedKernelsFor(backend) !== null;
}
