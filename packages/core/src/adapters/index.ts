export { AdapterLayer } from './adapter_layer.js';
export { findTargets, type TargetLayer, type TargetModules, type TargetSelection } from './find_targets.js';
export {
  type AddAdapterOptions,
  getPeftModel,
  type MergeOptions,
  PeftModel,
  savedKey,
} from './peft_model.js';
export {
  type AdapterConfigCodec,
  getPeftMethod,
  type LayerPeftMethod,
  type PeftMethod,
  type PromptEncoder,
  type PromptPeftMethod,
  peftMethodForType,
  registeredPeftMethods,
  registerPeftMethod,
  type SharedModules,
  type WrapContext,
} from './registry.js';
