// Training kernels and fused ops for TensorFlow.js backends: see README.md for what each fixes.
export { geluNew } from './ops/gelu_new.js';
export { silu } from './ops/silu.js';
export { registerTrainingKernels, replacedKernel, unregisterTrainingKernels } from './register_kernels.js';
