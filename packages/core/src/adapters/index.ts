export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  ADAPTER_WEIGHTS_METADATA,
  type AdapterFiles,
  type AdapterFilesOptions,
  adapterConfigJson,
  adapterFiles,
  type LoadAdapterOptions,
  loadAdapterFiles,
} from './adapter_files.js';
export { AdapterLayer } from './adapter_layer.js';
export {
  findTargets,
  type TargetLayer,
  type TargetModules,
  type TargetSelection,
  targetModulesOrDefault,
} from './find_targets.js';
export { copyModule, findModulesToSave, ModulesToSaveWrapper } from './modules_to_save.js';
export {
  type AddAdapterOptions,
  getPeftModel,
  type MergeOptions,
  PeftModel,
  peftModelFromConfigJson,
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
