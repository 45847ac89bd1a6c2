export { Parameter } from './parameter.js';
export { Module, ModuleDict, ParameterDict, type LoadStateDictOptions } from './module.js';
export { freezeParameters, unfreezeParameters, type ParameterSelector } from './freeze.js';
export { Linear, type LinearOptions } from './linear.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { LayerNorm, type LayerNormOptions } from './layer_norm.js';
export { RMSNorm, type RMSNormOptions } from './rms_norm.js';
export { Dropout } from './dropout.js';
export { kaimingUniform, uniform, normal } from './init.js';
export { manualSeed, nextSeed, getSeedState, setSeedState } from './random.js';
export {
  scaledDotProductAttention,
  prependKVPrefix,
  type AttentionOptions,
  type AttentionPrefixProvider,
  type KVPrefix,
  type PrefixableModel,
} from './attention.js';
