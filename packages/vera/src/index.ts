// @peft/vera: VeRA (Kopiczko et al. 2024, arXiv 2310.11454) as Hugging Face PEFT implements it.
import { registerPeftMethod } from '@peft/core';
import { veraMethod } from './model.js';

export {
  DEFAULT_VERA_TARGET_MODULES,
  parseVeraConfig,
  type VeraConfig,
  type VeraConfigInput,
  validateVeraConfig,
  veraConfig,
  veraConfigSchema,
  veraConfigToJson,
  veraTargetModules,
} from './config.js';
export { VeraLayer, type VeraLayerConfig } from './layer.js';
export {
  drawProjections,
  getVeraModel,
  projectionDims,
  SharedProjection,
  VERA_A,
  VERA_B,
  type VeraModelOptions,
  veraMethod,
  veraModelFromConfigJson,
} from './model.js';
export {
  TorchCpuGenerator,
  type TorchUniformOptions,
  torchKaimingUniform,
  torchSeed32,
} from './torch_random.js';

registerPeftMethod(veraMethod);
