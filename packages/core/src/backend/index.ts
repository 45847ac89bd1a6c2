// Backend selection and the gradient registration that tfjs-core's Node bundle leaves out.
export { registerAllGradients, tfjsGradientKernelNames } from './register_gradients.js';
