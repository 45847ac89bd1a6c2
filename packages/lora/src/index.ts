// @peft/lora: LoRA (Hu et al. 2021, arXiv 2106.09685) as Hugging Face PEFT implements it.
import { registerPeftMethod } from '@peft/core';
import { loraMethod } from './model.js';

export {
  DEFAULT_LORA_TARGET_MODULES,
  type LoraConfig,
  type LoraConfigInput,
  loraConfig,
  loraConfigSchema,
  loraConfigToJson,
  loraTargetModules,
  parseLoraConfig,
  patternKey,
  rankAndAlpha,
  validateLoraConfig,
} from './config.js';
export { LoraLayer, type LoraLayerConfig, loraScaling } from './layer.js';
export { getLoraModel, type LoraModelOptions, loraMethod, loraModelFromConfigJson } from './model.js';

registerPeftMethod(loraMethod);
