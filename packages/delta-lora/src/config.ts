// DeltaLoraConfig: every field of @peft/lora's LoraConfig (Hugging Face PEFT's `LoraConfig`) plus
// Delta-LoRA's two hyperparameters (Zi et al. 2023, Algorithm 1): the update ratio λ and the start
// step K, and the adapter's step count. Hugging Face PEFT has no Delta-LoRA, so `peft_type:
// "DELTA_LORA"` is this package's own format (see export.ts for the standard LoRA export).
import {
  AdapterConfigError,
  type AdapterConfigJson,
  defineAdapterConfig,
  type ParseAdapterConfigOptions,
  pythonFloat,
} from '@peft/core';
import { type LoraConfig, loraConfigSchema, loraConfigToJson, parseLoraConfig } from '@peft/lora';
import { z } from 'zod';

/** The fields Delta-LoRA adds to LoRA's (snake_case, as in adapter_config.json). */
const DELTA_FIELDS = {
  /** λ: the base weight moves by λ times the change of the LoRA product each step (paper: 2). */
  delta_update_ratio: pythonFloat().min(0).default(2),
  /** K: the base weight starts moving after this many optimizer steps (paper: 500). */
  update_start_steps: z.number().int().min(0).default(500),
  /**
   * Optimizer steps this adapter has been trained for, kept up to date by `DeltaLoraOptimizer` and
   * saved, so that training continues where it stopped (the start step is counted from here).
   */
  steps_taken: z.number().int().min(0).default(0),
};

/**
 * The schema of the whole file: LoRA's fields pass through here (LoRA's own schema checks them) except
 * `lora_dropout`, declared as a float so that it is written `0.0` as PEFT writes it.
 */
const fileSchema = defineAdapterConfig({
  peftType: 'DELTA_LORA',
  fields: {
    ...Object.fromEntries(
      loraConfigSchema.fields.map((field) => [
        field,
        field === 'lora_dropout' ? pythonFloat().default(0) : z.unknown(),
      ]),
    ),
    ...DELTA_FIELDS,
  },
});

/** A full Delta-LoRA config: LoRA's fields (camelCase) plus `deltaUpdateRatio`, `updateStartSteps`, `stepsTaken`. */
export type DeltaLoraConfig = Omit<LoraConfig, 'peftType'> & {
  peftType: 'DELTA_LORA';
  /** λ (default 2). */
  deltaUpdateRatio: number;
  /** K (default 500). */
  updateStartSteps: number;
  /** Optimizer steps taken so far (0 for a new adapter). */
  stepsTaken: number;
};

/** The fields a caller sets; the rest take the defaults (PEFT's for the LoRA fields). */
export type DeltaLoraConfigInput = Partial<Omit<DeltaLoraConfig, 'peftType'>>;

const DELTA_KEYS = ['peftType', 'deltaUpdateRatio', 'updateStartSteps', 'stepsTaken'] as const;

/** The LoRA part of a Delta-LoRA config, as a LoRA config (a copy). */
export function loraPart(config: DeltaLoraConfig): LoraConfig {
  const lora: Record<string, unknown> = { ...config, peftType: 'LORA' };
  for (const key of DELTA_KEYS.slice(1)) delete lora[key];
  return lora as LoraConfig;
}

/**
 * A view of a Delta-LoRA config for @peft/lora's helpers, which read and complete LoRA fields only
 * (never `peftType`): the same object, so that what they record (default targets, `fan_in_fan_out`)
 * is saved with the Delta-LoRA config.
 */
export function asLoraConfig(config: DeltaLoraConfig): LoraConfig {
  return config as unknown as LoraConfig;
}

/**
 * Checks what Delta-LoRA adds to LoRA's rules: no dropout on the low-rank branch (the paper removes it,
 * so that ∂L/∂W = ∂L/∂(BA) and the change of BA stands in for W's gradient) and no `lora_bias` (the
 * base weight's update has no bias term). Returns the config.
 */
export function validateDeltaLoraConfig(config: DeltaLoraConfig): DeltaLoraConfig {
  if (config.loraDropout !== 0) {
    throw new AdapterConfigError(
      `Delta-LoRA config: lora_dropout must be 0 (got ${config.loraDropout}): Delta-LoRA removes dropout from the low-rank branch, so that the change of B·A can stand in for the base weight's gradient`,
      'lora_dropout',
    );
  }
  if (config.loraBias) {
    throw new AdapterConfigError(
      'Delta-LoRA config: lora_bias is not supported (the base weight update has no bias term)',
      'lora_bias',
    );
  }
  return config;
}

/** Reads adapter_config.json content (`peft_type: "DELTA_LORA"`) into a validated config; unknown keys are ignored with a warning. */
export function parseDeltaLoraConfig(
  json: unknown,
  options: ParseAdapterConfigOptions = {},
): DeltaLoraConfig {
  // Checks the Delta-LoRA fields and warns about keys unknown to both LoRA and Delta-LoRA.
  const own = fileSchema.parse(json, options) as Record<string, unknown>;
  const file = json as Record<string, unknown>;
  const loraJson: Record<string, unknown> = { peft_type: 'LORA' };
  for (const key of Object.keys(file))
    if (!(key in DELTA_FIELDS) && key !== 'peft_type') loraJson[key] = file[key];
  const lora = parseLoraConfig(loraJson, { onWarning: () => {} });
  return validateDeltaLoraConfig({
    ...lora,
    peftType: 'DELTA_LORA',
    deltaUpdateRatio: own.deltaUpdateRatio as number,
    updateStartSteps: own.updateStartSteps as number,
    stepsTaken: own.stepsTaken as number,
  });
}

/** adapter_config.json content for a config: every LoRA field PEFT writes, then Delta-LoRA's. */
export function deltaLoraConfigToJson(config: DeltaLoraConfig): AdapterConfigJson {
  validateDeltaLoraConfig(config);
  loraConfigToJson(loraPart(config)); // checks the LoRA fields, naming the one at fault
  return fileSchema.toJson(config as never);
}

/** Every field at its default: PEFT's LoRA defaults (dropout 0), λ = 2, K = 500, no steps taken. */
export function deltaLoraConfigDefaults(): DeltaLoraConfig {
  return {
    ...loraConfigSchema.defaults(),
    peftType: 'DELTA_LORA',
    deltaUpdateRatio: 2,
    updateStartSteps: 500,
    stepsTaken: 0,
  };
}

/**
 * A validated Delta-LoRA config from the fields you set (camelCase), the defaults for the rest:
 * `deltaLoraConfig({ r: 8, loraAlpha: 16, deltaUpdateRatio: 2, updateStartSteps: 500 })`.
 */
export function deltaLoraConfig(fields: DeltaLoraConfigInput = {}): DeltaLoraConfig {
  const merged = { ...deltaLoraConfigDefaults(), ...fields, peftType: 'DELTA_LORA' } as DeltaLoraConfig;
  return parseDeltaLoraConfig(deltaLoraConfigToJson(merged));
}
