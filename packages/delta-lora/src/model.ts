// How Delta-LoRA plugs into core: LoRA's target selection and per-layer rank/alpha (@peft/lora), with
// DeltaLoraLayer as the wrapper. Every targeted layer is adapted and moves its base weight; there is
// no layer selection beyond LoRA's `target_modules`.
import {
  type AddAdapterOptions,
  getPeftModel,
  type LayerPeftMethod,
  type Module,
  type PeftModel,
} from '@peft/core';
import { loraMethod, loraTargetModules, rankAndAlpha } from '@peft/lora';
import {
  asLoraConfig,
  type DeltaLoraConfig,
  type DeltaLoraConfigInput,
  deltaLoraConfig,
  deltaLoraConfigDefaults,
  deltaLoraConfigToJson,
  parseDeltaLoraConfig,
} from './config.js';
import { DELTA_LORA_METHOD_NAME, DeltaLoraLayer, type DeltaLoraLayerConfig } from './layer.js';
import { createOptimizer } from './optimizer.js';

/** Fill a config given as a bare object with the defaults and validate it, in place. */
function completeConfig(config: DeltaLoraConfig): DeltaLoraConfig {
  const given = config as Partial<DeltaLoraConfig>;
  for (const [key, value] of Object.entries(deltaLoraConfigDefaults())) {
    if (given[key as keyof DeltaLoraConfig] === undefined) (given as Record<string, unknown>)[key] = value;
  }
  deltaLoraConfigToJson(config); // validates every field, names the one at fault
  return config;
}

/**
 * The Delta-LoRA technique, registered as `"delta-lora"`: `peft_type: "DELTA_LORA"` (this package's
 * own format: LoRA's fields plus `delta_update_ratio`, `update_start_steps`, `steps_taken`), tensors
 * `lora_A`, `lora_B` and, once the base weights move, `lora_A_start`, `lora_B_start`,
 * `lora_weight_delta`. Train with `createOptimizer`/`DeltaLoraOptimizer`; export for PEFT with
 * `deltaLoraToLora`/`saveAsLoraAdapter`.
 */
export const deltaLoraMethod: LayerPeftMethod<DeltaLoraConfig> = {
  kind: 'layer',
  name: DELTA_LORA_METHOD_NAME,
  peftType: 'DELTA_LORA',
  tensorPrefix: 'lora_',
  config: { parse: parseDeltaLoraConfig, toJson: deltaLoraConfigToJson },
  // AdamW wrapped so that each step also moves the frozen base weights (what trains Delta-LoRA).
  createOptimizer: (peft, options) => createOptimizer(peft, options),
  targetSelection(config, modelType) {
    completeConfig(config);
    return {
      targetModules: loraTargetModules(asLoraConfig(config), modelType),
      layersToTransform: config.layersToTransform,
      layersPattern: config.layersPattern,
      excludeModules: config.excludeModules,
    };
  },
  // LoRA's: records the default targets and `fan_in_fan_out` in the config.
  prepare: (context) => loraMethod.prepare?.({ ...context, config: asLoraConfig(context.config) }),
  createLayer: (base) => new DeltaLoraLayer(base),
  layerConfig(config, target): DeltaLoraLayerConfig {
    const { r, alpha } = rankAndAlpha(asLoraConfig(config), target.name);
    return {
      r,
      alpha,
      dropout: 0,
      useRslora: config.useRslora,
      initLoraWeights: config.initLoraWeights,
      started: config.stepsTaken >= config.updateStartSteps + 1,
    };
  },
  modulesToSave: (config) => config.modulesToSave,
};

export interface DeltaLoraModelOptions extends AddAdapterOptions {
  /** Default `"default"`. */
  adapterName?: string;
}

/**
 * Wrap `model` with a Delta-LoRA adapter: every layer selected by `target_modules` gets a LoRA pair
 * (dropout 0) and a base weight that moves during training. Train it with `createOptimizer(peft)`.
 */
export function getDeltaLoraModel<M extends Module>(
  model: M,
  config: DeltaLoraConfigInput | DeltaLoraConfig = {},
  options: DeltaLoraModelOptions = {},
): PeftModel<M> {
  return getPeftModel(model, deltaLoraMethod, deltaLoraConfig(config), options);
}
