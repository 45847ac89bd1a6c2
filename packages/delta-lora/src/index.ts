// @peft/delta-lora: Delta-LoRA (Zi et al. 2023, arXiv 2309.02411): LoRA whose frozen base weights also
// move by the change of the low-rank product after each optimizer step past a start step.
import { registerPeftMethod } from '@peft/core';
import { deltaLoraMethod } from './model.js';

export {
  asLoraConfig,
  type DeltaLoraConfig,
  type DeltaLoraConfigInput,
  deltaLoraConfig,
  deltaLoraConfigDefaults,
  deltaLoraConfigToJson,
  loraPart,
  parseDeltaLoraConfig,
  validateDeltaLoraConfig,
} from './config.js';
export { deltaLoraToLora, type LoraExport, loraExportFiles } from './export.js';
export {
  DELTA_LORA_METHOD_NAME,
  DeltaLoraLayer,
  type DeltaLoraLayerConfig,
  type DeltaState,
  type LoraFactors,
} from './layer.js';
export { type DeltaLoraModelOptions, deltaLoraMethod, getDeltaLoraModel } from './model.js';
export {
  type CreateOptimizerOptions,
  createOptimizer,
  DeltaLoraOptimizer,
  type DeltaLoraOptimizerOptions,
} from './optimizer.js';

registerPeftMethod(deltaLoraMethod);
