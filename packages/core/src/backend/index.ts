// Backend selection and the gradient registration that tfjs-core's Node bundle leaves out.
export type { BackendFallback, BackendName, BackendReport, InitBackendOptions } from './init_backend.js';
export { formatBackendReport, initBackend } from './init_backend.js';
export { registerAllGradients, tfjsGradientKernelNames } from './register_gradients.js';
