// How LoRA plugs into core (PEFT's tuners/lora/model.py): which layers a config selects, the
// per-layer rank and alpha, and the entry points that build a LoRA PeftModel.
import {
  type AddAdapterOptions,
  getPeftModel,
  type LayerPeftMethod,
  type Module,
  type ParseAdapterConfigOptions,
  type PeftModel,
  peftModelFromConfigJson,
} from '@peft/core';
import {
  type LoraConfig,
  type LoraConfigInput,
  loraConfig,
  loraConfigSchema,
  loraConfigToJson,
  loraTargetModules,
  parseLoraConfig,
  rankAndAlpha,
} from './config.js';
import { LoraLayer, type LoraLayerConfig } from './layer.js';

/**
 * Fill a config given as a bare object with PEFT's defaults and validate it, in place (PEFT's
 * `LoraModel` also completes the user's config: default target modules, `fan_in_fan_out`).
 */
function completeConfig(config: LoraConfig): LoraConfig {
  const given = config as Partial<LoraConfig>;
  const missing = Object.entries(loraConfigSchema.defaults()).filter(
    ([key]) => given[key as keyof LoraConfig] === undefined,
  );
  Object.assign(config, Object.fromEntries(missing));
  loraConfigToJson(config); // validates every field, names the one at fault
  return config;
}

/** The LoRA technique, registered as `"lora"` (`peft_type: "LORA"`, tensors `lora_A` / `lora_B`). */
export const loraMethod: LayerPeftMethod<LoraConfig> = {
  kind: 'layer',
  name: 'lora',
  peftType: 'LORA',
  tensorPrefix: 'lora_',
  config: { parse: parseLoraConfig, toJson: loraConfigToJson },
  targetSelection(config, modelType) {
    completeConfig(config);
    return {
      targetModules: loraTargetModules(config, modelType),
      layersToTransform: config.layersToTransform,
      layersPattern: config.layersPattern,
      excludeModules: config.excludeModules,
    };
  },
  prepare({ config, targets, modelType }) {
    // As PEFT, the saved config records the defaults used and the layout of the adapted layers:
    // `fan_in_fan_out` ends up as the last target's (true for GPT-2's Conv1D).
    if (config.targetModules == null) config.targetModules = [...loraTargetModules(config, modelType)];
    const last = targets[targets.length - 1];
    if (last) config.fanInFanOut = last.base.fanInFanOut;
  },
  createLayer: (base) => new LoraLayer(base),
  layerConfig(config, target): LoraLayerConfig {
    const { r, alpha } = rankAndAlpha(config, target.name);
    return {
      r,
      alpha,
      dropout: config.loraDropout,
      useRslora: config.useRslora,
      initLoraWeights: config.initLoraWeights,
      loraBias: config.loraBias,
    };
  },
  modulesToSave: (config) => config.modulesToSave,
};

export interface LoraModelOptions extends AddAdapterOptions {
  /** Default `"default"`. */
  adapterName?: string;
}

/**
 * Wrap `model` with a LoRA adapter, like PEFT's `get_peft_model(model, LoraConfig(...))`: the target
 * layers are wrapped in place, the base is frozen, only `lora_A`/`lora_B` (and `modules_to_save`) train.
 */
export function getLoraModel<M extends Module>(
  model: M,
  config: LoraConfigInput | LoraConfig = {},
  options: LoraModelOptions = {},
): PeftModel<M> {
  return getPeftModel(model, loraMethod, loraConfig(config), options);
}

/**
 * Build a LoRA `PeftModel` from config JSON: adapter_config.json text or its parsed object, snake_case
 * as PEFT writes it (`peft_type` may be left out; any other than `"LORA"` is an error). For the CLI:
 * `loraModelFromConfigJson(model, await readFile('lora.json', 'utf8'))`.
 */
export function loraModelFromConfigJson<M extends Module>(
  model: M,
  json: string | Record<string, unknown>,
  options: LoraModelOptions & ParseAdapterConfigOptions = {},
): PeftModel<M> {
  return peftModelFromConfigJson(model, loraMethod, json, options, 'LoRA');
}
