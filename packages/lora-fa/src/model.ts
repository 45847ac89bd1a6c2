// How LoRA-FA plugs into core: @peft/lora's technique (config, targets, per-layer rank and alpha,
// file format) with LoRA-FA layers. PEFT has no LoRA-FA tuner: its LoRA-FA is a plain LoraConfig
// trained by `create_lorafa_optimizer`, saved as `peft_type: "LORA"`.
import {
  getPeftModel,
  type LayerPeftMethod,
  type Module,
  type ParseAdapterConfigOptions,
  type PeftModel,
  peftModelFromConfigJson,
  readSafetensorsAsTensors,
} from '@peft/core';
import {
  type LoraConfig,
  type LoraConfigInput,
  type LoraModelOptions,
  loraConfig,
  loraMethod,
} from '@peft/lora';
import { LoraFaLayer } from './layer.js';
import { createOptimizer } from './optimizer.js';

/**
 * The LoRA-FA technique, registered as `"lora-fa"`. It saves LoRA files (`peft_type: "LORA"`,
 * `lora_A` / `lora_B`; A is saved because it is random), so `savesAs: 'lora'`: files of type LORA
 * load with @peft/lora. `createOptimizer` is its default optimizer (PEFT's LoRA-FA optimizer).
 */
export const loraFaMethod: LayerPeftMethod<LoraConfig> & {
  readonly createOptimizer: typeof createOptimizer;
} = {
  ...loraMethod,
  name: 'lora-fa',
  savesAs: 'lora',
  createLayer: (base) => new LoraFaLayer(base),
  createOptimizer,
};

/**
 * Wrap `model` with a LoRA-FA adapter: the target layers are wrapped in place, the base is frozen,
 * `lora_A` is frozen at its random initialisation, only `lora_B` (and `modules_to_save`) train. The
 * config is a `LoraConfig` (same fields and defaults as @peft/lora).
 */
export function getLoraFaModel<M extends Module>(
  model: M,
  config: LoraConfigInput | LoraConfig = {},
  options: LoraModelOptions = {},
): PeftModel<M> {
  return getPeftModel(model, loraFaMethod, loraConfig(config), options);
}

/**
 * Build a LoRA-FA `PeftModel` from LoRA config JSON (adapter_config.json text or its parsed object,
 * snake_case as PEFT writes it; `peft_type` may be left out, any other than `"LORA"` is an error).
 */
export function loraFaModelFromConfigJson<M extends Module>(
  model: M,
  json: string | Record<string, unknown>,
  options: LoraModelOptions & ParseAdapterConfigOptions = {},
): PeftModel<M> {
  return peftModelFromConfigJson(model, loraFaMethod, json, options, 'LoRA-FA');
}

/**
 * Load LoRA adapter files (`adapter_config.json` content and `adapter_model.safetensors` bytes, as PEFT
 * or `saveAdapter` write them) onto `model` as a LoRA-FA adapter, to go on training it with A frozen.
 * (`loadAdapter` of @peft/core loads the same files as a plain LoRA adapter, for inference.)
 * All or nothing: on error the model is left unwrapped.
 */
export function loadLoraFaAdapter<M extends Module>(
  model: M,
  files: { config: string | Record<string, unknown>; weights: ArrayBuffer | ArrayBufferView },
  options: LoraModelOptions & ParseAdapterConfigOptions = {},
): PeftModel<M> {
  const flags = [...model.namedParameters()].map(([, p]) => [p, p.requiresGrad] as const);
  const { tensors } = readSafetensorsAsTensors(files.weights);
  const name = options.adapterName ?? 'default';
  let peft: PeftModel<M> | undefined;
  try {
    peft = loraFaModelFromConfigJson(model, files.config, options);
    peft.loadAdapterStateDict(name, tensors);
    return peft;
  } catch (error) {
    if (peft?.adapterNames().includes(name)) peft.deleteAdapter(name);
    for (const [parameter, flag] of flags) parameter.requiresGrad = flag;
    throw error;
  } finally {
    for (const tensor of tensors.values()) tensor.dispose();
  }
}
