import { Identity, type IdentityInputs, type KernelConfig } from '@tensorflow/tfjs-core';
import { asKernelFunc, callKernel, type WasmKernelArgs } from './wasm_backend.js';

/**
 * Identity sharing the input's data (a reference count, as tfjs' cpu backend and the wasm Reshape
 * do) instead of copying it. Tensors are immutable, so the copy bought nothing; `tf.clone` and the
 * tensors a `customGrad` saves for backprop (`geluNew`, `silu`) go through here.
 */
export function identityConfig(original: KernelConfig): KernelConfig {
  const kernelFunc = asKernelFunc((args: WasmKernelArgs<IdentityInputs, Record<string, never>>) => {
    const { inputs, backend } = args;
    const x = inputs.x!;
    if (x.dtype === 'string') return callKernel(original, args);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
  return { ...original, kernelName: Identity, backendName: 'wasm', kernelFunc };
}
