export { addKeepingNothing } from './add_keeping_nothing.js';
export {
  type AttentionOptions,
  type AttentionPrefixProvider,
  type KVPrefix,
  type PrefixableModel,
  prependKVPrefix,
  scaledDotProductAttention,
} from './attention.js';
export { type CustomOpResult, customOp } from './custom_op.js';
export { Dropout } from './dropout.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { freezeParameters, type ParameterSelector, unfreezeParameters } from './freeze.js';
export { frozenMatMul, type SeededDropout } from './frozen_matmul.js';
export { kaimingUniform, normal, uniform } from './init.js';
export { LayerNorm, type LayerNormOptions } from './layer_norm.js';
export { Linear, type LinearOptions } from './linear.js';
export { type LoadStateDictOptions, Module, ModuleDict, ParameterDict } from './module.js';
export { Parameter } from './parameter.js';
export { getSeedState, manualSeed, nextSeed, setSeedState } from './random.js';
export { RMSNorm, type RMSNormOptions } from './rms_norm.js';
