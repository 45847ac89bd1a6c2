// @peft/lora-fa: LoRA-FA (Zhang et al. 2023, arXiv 2308.03303), LoRA with a frozen A: @peft/lora's
// adapters with only B trained, a training pass that keeps z = x·Aᵀ instead of x, and Hugging Face
// PEFT's LoRA-FA optimizer. Saves LoRA files (peft_type "LORA").
import { registerPeftMethod } from '@peft/core';
import { loraFaMethod } from './model.js';

export { frozenMatMul, LoraFaLayer, type SeededDropout } from './layer.js';
export { activationBytesSaved } from './memory.js';
export { getLoraFaModel, loadLoraFaAdapter, loraFaMethod, loraFaModelFromConfigJson } from './model.js';
export {
  type CreateOptimizerOptions,
  createOptimizer,
  LoraFaOptimizer,
  type LoraFaOptimizerOptions,
  PROJECTION_DELTA,
} from './optimizer.js';
export { loraFaProjection, symmetricEigen, symmetricPseudoInverse } from './pseudo_inverse.js';

registerPeftMethod(loraFaMethod);
