// VeraConfig: Hugging Face PEFT's `VeraConfig` (src/peft/tuners/vera/config.py, PEFT 0.21), field for
// field, with its defaults. In TypeScript the fields are camelCase (`projectionPrngKey`, `dInitial`).
import {
  AdapterConfigError,
  type AdapterConfigJson,
  defineAdapterConfig,
  type ParseAdapterConfigOptions,
  pythonFloat,
  type TargetModules,
  targetModulesOrDefault,
} from '@peft/core';
import { DEFAULT_LORA_TARGET_MODULES } from '@peft/lora';
import { z } from 'zod';

const names = z
  .union([z.array(z.string()), z.string()])
  .nullable()
  .default(null);

/** The schema of adapter_config.json for `peft_type: "VERA"`. */
export const veraConfigSchema = defineAdapterConfig({
  peftType: 'VERA',
  fields: {
    /** Rank of the shared projections (PEFT: "choose higher values than LoRA ranks"). */
    r: z.number().int().positive().default(256),
    /** Module names (exact or dotted suffix), a regex matching the whole name, or `"all-linear"`. */
    target_modules: names,
    /** Seed of torch's CPU generator that draws the shared projections `vera_A` and `vera_B`. */
    projection_prng_key: z.number().int().default(0),
    /** Save `vera_A` / `vera_B` in the adapter file (otherwise they are drawn again from the key). */
    save_projection: z.boolean().default(true),
    /** Dropout on the VeRA branch's input, in training only. */
    vera_dropout: pythonFloat().min(0).lt(1).default(0),
    /** Initial value of every entry of `vera_lambda_d` (PEFT: small values, <= 0.1, recommended). */
    d_initial: pythonFloat().default(0.1),
    /** Set automatically: true for GPT-2's Conv1D layers (`[in, out]` weights), false for Linear. */
    fan_in_fan_out: z.boolean().default(false),
    /** Which biases train; only "none" is supported. */
    bias: z.enum(['none', 'all', 'vera_only']).default('none'),
    /** Modules given a trainable copy per adapter, saved with it (e.g. a classifier head). */
    modules_to_save: z.array(z.string()).nullable().default(null),
    /** `true`: `vera_lambda_b = 0`, `vera_lambda_d = d_initial`; `false`: ones and N(0, 1) (tests only). */
    init_weights: z.boolean().default(true),
    /** Only layers with these block indices. */
    layers_to_transform: z
      .union([z.array(z.number().int()), z.number().int()])
      .nullable()
      .default(null),
    /** Name(s) of the block list holding the index (`"h"`, `"layers"`). */
    layers_pattern: names,
  },
});

/** A full VeRA config (camelCase; every field present), e.g. from `veraConfig({ r: 64 })`. */
export type VeraConfig = ReturnType<typeof veraConfigSchema.defaults>;

/** The fields a caller sets; the rest take PEFT's defaults. */
export type VeraConfigInput = Partial<Omit<VeraConfig, 'peftType'>>;

/**
 * PEFT's `TRANSFORMERS_MODELS_TO_VERA_TARGET_MODULES_MAPPING`: LoRA's table with one override
 * (`phi`: attention only).
 */
export const DEFAULT_VERA_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  ...DEFAULT_LORA_TARGET_MODULES,
  phi: ['q_proj', 'v_proj'],
};

/** PEFT's own cross-field rules (`VeraConfig.__post_init__`) and what this package refuses. */
export function validateVeraConfig(config: VeraConfig): VeraConfig {
  const fail = (field: string, message: string): never => {
    throw new AdapterConfigError(`VeRA config: ${message}`, field);
  };
  if (config.bias !== 'none') {
    fail('bias', `bias "${config.bias}" is not supported (only "none": base biases stay frozen)`);
  }
  if (!Number.isFinite(config.dInitial))
    fail('d_initial', `d_initial must be finite (got ${config.dInitial})`);
  if (!Number.isSafeInteger(config.projectionPrngKey)) {
    fail(
      'projection_prng_key',
      `projection_prng_key must be a safe integer (got ${config.projectionPrngKey})`,
    );
  }
  if (config.layersPattern != null && config.layersPattern.length > 0 && config.layersToTransform == null) {
    fail(
      'layers_pattern',
      'When `layers_pattern` is specified, `layers_to_transform` must also be specified.',
    );
  }
  return config;
}

/** Reads adapter_config.json content (snake_case) into a validated `VeraConfig`; unknown keys are ignored with a warning. */
export function parseVeraConfig(json: unknown, options: ParseAdapterConfigOptions = {}): VeraConfig {
  return validateVeraConfig(veraConfigSchema.parse(json, options) as VeraConfig);
}

/** adapter_config.json content for a config, every field PEFT writes included. */
export function veraConfigToJson(config: VeraConfig): AdapterConfigJson {
  return veraConfigSchema.toJson(validateVeraConfig(config));
}

/**
 * A validated VeRA config from the fields you set (camelCase), PEFT's defaults for the rest:
 * `veraConfig({ r: 64, targetModules: ['c_attn'] })`.
 */
export function veraConfig(fields: VeraConfigInput = {}): VeraConfig {
  const merged = { ...veraConfigSchema.defaults(), ...fields, peftType: 'VERA' } as VeraConfig;
  return parseVeraConfig(veraConfigSchema.toJson(merged));
}

/** The target selection of a config: its `target_modules`, or PEFT's default for the model type. */
export function veraTargetModules(config: VeraConfig, modelType: string | undefined): TargetModules {
  return targetModulesOrDefault(config.targetModules, modelType, DEFAULT_VERA_TARGET_MODULES, 'VeRA');
}
