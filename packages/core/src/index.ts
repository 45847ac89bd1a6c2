// @peft/core: the shared runtime. Each area keeps its own barrel; side-effect registration
// (gradients, kernels) happens in `backend/` when a backend is initialised.

export * from './adapters/index.js';
export * from './backend/index.js';
export * from './files/index.js';
export * from './kernels/index.js';
export * from './nn/index.js';
export * from './train/index.js';
