// Training kernels and fused ops for TensorFlow.js backends: see README.md for what each fixes.
export { cachedAttention, cachedAttentionAvailable, writeKV } from './ops/cached_attention.js';
export { causalSelfAttention, causalSelfAttentionFusable } from './ops/causal_attention.js';
export { type CrossEntropyOptions, crossEntropy } from './ops/cross_entropy.js';
export { geluNew } from './ops/gelu_new.js';
export { layerNorm } from './ops/layer_norm.js';
export { silu } from './ops/silu.js';
export { softmaxLastAxis } from './ops/softmax.js';
export { registerTrainingKernels, replacedKernel, unregisterTrainingKernels } from './register_kernels.js';
export {
  setWasmFusedKernels,
  setWasmMatmulEngine,
  type WasmMatmulEngine,
  wasmMatmulEngine,
} from './wasm/simd/simd_backend.js';
/**
 * The WebAssembly bytecode writer core's SIMD kernels are generated with (`FunctionBuilder`,
 * `buildModule`, the value types, `relaxedSimdSupported`): for a package's own kernels or probes.
 */
export * as wasmBytecode from './wasm/simd/wasm_builder.js';
