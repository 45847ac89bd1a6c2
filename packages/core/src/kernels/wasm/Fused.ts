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

/** Kernels of the fused ops (wasm only). */
export const fusedKernelConfigs: readonly KernelConfig[] = [
  geluNewConfig,
  geluNewGradConfig,
  layerNormConfig,
  layerNormGradConfig,
  softmaxConfig,
  softmaxGradConfig,
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
