// LoraConfig: Hugging Face PEFT's `LoraConfig` (src/peft/tuners/lora/config.py, PEFT 0.21), field for
// field, with its defaults. The saved adapter_config.json has every field PEFT writes; in TypeScript
// the fields are camelCase (`loraAlpha`, `targetModules`, ...).
import {
  AdapterConfigError,
  type AdapterConfigJson,
  defineAdapterConfig,
  type ParseAdapterConfigOptions,
  pythonFloat,
  type TargetModules,
  targetModulesOrDefault,
} from '@peft/core';
import { z } from 'zod';

const names = z
  .union([z.array(z.string()), z.string()])
  .nullable()
  .default(null);
const unsupportedObject = z.record(z.string(), z.unknown()).nullable().default(null);

/** The schema of adapter_config.json for `peft_type: "LORA"`. */
export const loraConfigSchema = defineAdapterConfig({
  peftType: 'LORA',
  fields: {
    /** LoRA rank. */
    r: z.number().int().positive().default(8),
    /** Module names (exact or dotted suffix), a regex matching the whole name, or `"all-linear"`. */
    target_modules: names,
    /** Modules never adapted (same matching as `target_modules`). */
    exclude_modules: names,
    /** The numerator of the scaling: `lora_alpha / r` (or `/ sqrt(r)` with rsLoRA). */
    lora_alpha: z.number().default(8),
    /** Dropout on the LoRA branch's input, in training only. */
    lora_dropout: pythonFloat().min(0).lt(1).default(0),
    /** Set automatically: true for GPT-2's Conv1D layers (`[in, out]` weights), false for Linear. */
    fan_in_fan_out: z.boolean().default(false),
    /** Which biases train; only "none" is supported. */
    bias: z.enum(['none', 'all', 'lora_only']).default('none'),
    /** Rank-stabilised LoRA (Kalajdzievski 2023): scaling `lora_alpha / sqrt(r)`. */
    use_rslora: z.boolean().default(false),
    /** Modules given a trainable copy per adapter, saved with it (e.g. a classifier head). */
    modules_to_save: z.array(z.string()).nullable().default(null),
    /** `true`: A kaiming-uniform (a=sqrt(5)), B zero; `"gaussian"`: A ~ N(0, 1/r), B zero; `false`: no reset. */
    init_lora_weights: z.union([z.boolean(), z.string()]).default(true),
    /** Only layers with these block indices. */
    layers_to_transform: z
      .union([z.array(z.number().int()), z.number().int()])
      .nullable()
      .default(null),
    /** Name(s) of the block list holding the index (`"h"`, `"layers"`). */
    layers_pattern: names,
    /** Per-module ranks: key is a module name suffix or regex, as PEFT's `get_pattern_key`. */
    rank_pattern: z.record(z.string(), z.number().int().positive()).default({}),
    /** Per-module alphas, keyed like `rank_pattern`. */
    alpha_pattern: z.record(z.string(), z.number()).default({}),
    megatron_config: unsupportedObject,
    megatron_core: z.string().nullable().default('megatron.core'),
    trainable_token_indices: z.unknown().default(null),
    loftq_config: z.record(z.string(), z.unknown()).default({}),
    eva_config: unsupportedObject,
    corda_config: unsupportedObject,
    use_dora: z.boolean().default(false),
    alora_invocation_tokens: z.array(z.number().int()).nullable().default(null),
    use_qalora: z.boolean().default(false),
    qalora_group_size: z.number().int().default(16),
    layer_replication: z.array(z.unknown()).nullable().default(null),
    /** A trainable bias on B (merged into the base bias). */
    lora_bias: z.boolean().default(false),
    target_parameters: z.array(z.string()).nullable().default(null),
    ensure_weight_tying: z.boolean().default(false),
    arrow_config: unsupportedObject,
    kasa_config: unsupportedObject,
    lora_ga_config: unsupportedObject,
    monteclora_config: unsupportedObject,
    use_bdlora: unsupportedObject,
    velora_config: unsupportedObject,
  },
});

/** A full LoRA config (camelCase; every field present), e.g. from `loraConfig({ r: 4 })`. */
export type LoraConfig = ReturnType<typeof loraConfigSchema.defaults>;

/** The fields a caller sets; the rest take PEFT's defaults. */
export type LoraConfigInput = Partial<Omit<LoraConfig, 'peftType'>>;

/** PEFT's `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING` for the model types @peft/models builds and kin. */
export const DEFAULT_LORA_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  gpt2: ['c_attn'],
  gpt_bigcode: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  mixtral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
  gemma: ['q_proj', 'v_proj'],
  opt: ['q_proj', 'v_proj'],
  gptj: ['q_proj', 'v_proj'],
  phi: ['q_proj', 'v_proj', 'fc1', 'fc2'],
  gpt_neox: ['query_key_value'],
  bloom: ['query_key_value'],
  falcon: ['query_key_value'],
};

/** The initialisations this package implements (data-driven ones such as PiSSA or LoftQ are not). */
const SUPPORTED_INITS: readonly unknown[] = [true, false, 'gaussian'];

/** Fields of variants this package does not implement: any value but the default is refused. */
const UNSUPPORTED: readonly [field: string, camel: keyof LoraConfig, what: string][] = [
  ['use_dora', 'useDora', 'DoRA'],
  ['use_qalora', 'useQalora', 'QALoRA'],
  ['megatron_config', 'megatronConfig', 'Megatron parallel layers'],
  ['trainable_token_indices', 'trainableTokenIndices', 'trainable tokens'],
  ['alora_invocation_tokens', 'aloraInvocationTokens', 'activated LoRA (aLoRA)'],
  ['layer_replication', 'layerReplication', 'layer replication'],
  ['target_parameters', 'targetParameters', 'targeting parameters (MoE experts)'],
  ['arrow_config', 'arrowConfig', 'Arrow routing'],
  ['kasa_config', 'kasaConfig', 'KaSA'],
  ['monteclora_config', 'montecloraConfig', 'MonteCLoRA'],
  ['use_bdlora', 'useBdlora', 'block-diagonal LoRA'],
  ['velora_config', 'veloraConfig', 'VeLoRA'],
];

function isDefault(value: unknown): boolean {
  return value === null || value === false;
}

/**
 * Checks what the schema cannot: PEFT's own cross-field rules (`LoraConfig.__post_init__`) and the
 * variants this package refuses rather than silently ignoring. Returns the config.
 */
export function validateLoraConfig(config: LoraConfig): LoraConfig {
  const fail = (field: string, message: string): never => {
    throw new AdapterConfigError(`LoRA config: ${message}`, field);
  };
  if (config.bias !== 'none') {
    fail('bias', `bias "${config.bias}" is not supported (only "none": base biases stay frozen)`);
  }
  if (!SUPPORTED_INITS.includes(config.initLoraWeights)) {
    fail(
      'init_lora_weights',
      `init_lora_weights ${JSON.stringify(config.initLoraWeights)} is not supported (true, false or "gaussian")`,
    );
  }
  for (const [field, camel, what] of UNSUPPORTED) {
    if (!isDefault(config[camel])) fail(field, `${field} (${what}) is not supported by @peft/lora`);
  }
  if (typeof config.targetModules === 'string' && config.targetModules !== 'all-linear') {
    if (config.layersToTransform != null)
      fail('layers_to_transform', '`layers_to_transform` cannot be used when `target_modules` is a str.');
    if (config.layersPattern != null)
      fail('layers_pattern', '`layers_pattern` cannot be used when `target_modules` is a str.');
  }
  if (config.layersPattern != null && config.layersPattern.length > 0 && config.layersToTransform == null) {
    fail(
      'layers_pattern',
      'When `layers_pattern` is specified, `layers_to_transform` must also be specified.',
    );
  }
  if (config.loraBias && config.initLoraWeights === 'gaussian') {
    fail('lora_bias', 'lora_bias=True is only supported with init_lora_weights=True or False');
  }
  return config;
}

/** Reads adapter_config.json content (snake_case) into a validated `LoraConfig`; unknown keys are ignored with a warning. */
export function parseLoraConfig(json: unknown, options: ParseAdapterConfigOptions = {}): LoraConfig {
  return validateLoraConfig(loraConfigSchema.parse(json, options) as LoraConfig);
}

/** adapter_config.json content for a config, every field PEFT writes included. */
export function loraConfigToJson(config: LoraConfig): AdapterConfigJson {
  return loraConfigSchema.toJson(validateLoraConfig(config));
}

/**
 * A validated LoRA config from the fields you set (camelCase), PEFT's defaults for the rest:
 * `loraConfig({ r: 4, loraAlpha: 32, targetModules: ['c_attn'] })`.
 */
export function loraConfig(fields: LoraConfigInput = {}): LoraConfig {
  const merged = { ...loraConfigSchema.defaults(), ...fields, peftType: 'LORA' } as LoraConfig;
  return parseLoraConfig(loraConfigSchema.toJson(merged));
}

/**
 * PEFT's `get_pattern_key`: the first `rank_pattern`/`alpha_pattern` key whose regex matches the end
 * of the module name at a dot boundary (`(.*\.)?(key)$`), or null.
 */
export function patternKey(keys: readonly string[], moduleName: string): string | null {
  for (const key of keys) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(moduleName)) return key;
  }
  return null;
}

/** Rank and alpha of one module: `rank_pattern`/`alpha_pattern` entries override `r`/`lora_alpha`. */
export function rankAndAlpha(config: LoraConfig, moduleName: string): { r: number; alpha: number } {
  const rKey = patternKey(Object.keys(config.rankPattern), moduleName);
  const alphaKey = patternKey(Object.keys(config.alphaPattern), moduleName);
  return {
    r: rKey === null ? config.r : config.rankPattern[rKey]!,
    alpha: alphaKey === null ? config.loraAlpha : config.alphaPattern[alphaKey]!,
  };
}

/** The target selection of a config: its `target_modules`, or PEFT's default for the model type. */
export function loraTargetModules(config: LoraConfig, modelType: string | undefined): TargetModules {
  return targetModulesOrDefault(config.targetModules, modelType, DEFAULT_LORA_TARGET_MODULES, 'LoRA');
}
