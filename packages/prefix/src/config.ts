// PrefixTuningConfig: Hugging Face PEFT's `PrefixTuningConfig` (src/peft/tuners/prefix_tuning/config.py,
// PEFT 0.21) on top of `PromptLearningConfig` (src/peft/config.py), field for field, with its defaults.
// In TypeScript the fields are camelCase (`numVirtualTokens`, `prefixProjection`, ...).
import {
  AdapterConfigError,
  type AdapterConfigJson,
  defineAdapterConfig,
  type ParseAdapterConfigOptions,
} from '@peft/core';
import { z } from 'zod';

const positiveOrNull = z.number().int().positive().nullable().default(null);

/** The schema of adapter_config.json for `peft_type: "PREFIX_TUNING"`. */
export const prefixTuningConfigSchema = defineAdapterConfig({
  peftType: 'PREFIX_TUNING',
  fields: {
    /** Number of prefix positions in every layer (required; PEFT has no default). */
    num_virtual_tokens: positiveOrNull,
    /** Width of one layer's keys (or values): `head_dim · num_key_value_heads`; filled from the model. */
    token_dim: positiveOrNull,
    /** 1 for a causal LM (filled in); 2 is for encoder-decoder models, not supported here. */
    num_transformer_submodules: positiveOrNull,
    /** Key/value heads of the prefix (`num_key_value_heads` for grouped-query attention); filled from the model. */
    num_attention_heads: positiveOrNull,
    /** Number of attention layers; filled from the model. */
    num_layers: positiveOrNull,
    /** PEFT's field; prefix tuning here supports none (see `validatePrefixTuningConfig`). */
    modules_to_save: z.array(z.string()).nullable().default(null),
    /** `null`: random init (Embedding N(0, 1), torch Linear init); `"zero"`: the output starts at zero. */
    init_weights: z.enum(['zero']).nullable().default(null),
    /** Hidden width of the projection MLP; defaults to `token_dim`. */
    encoder_hidden_size: positiveOrNull,
    /** Reparametrise the prefix with Embedding → Linear → Tanh → Linear during training. */
    prefix_projection: z.boolean().default(false),
  },
});

/** A full prefix-tuning config (camelCase; every field present), e.g. from `prefixTuningConfig({ numVirtualTokens: 20 })`. */
export type PrefixTuningConfig = ReturnType<typeof prefixTuningConfigSchema.defaults>;

/** The fields a caller sets; the rest take PEFT's defaults. */
export type PrefixTuningConfigInput = Partial<Omit<PrefixTuningConfig, 'peftType'>>;

/**
 * Checks what the schema cannot: the fields PEFT requires, and the variants this package refuses
 * rather than silently ignoring. Returns the config.
 */
export function validatePrefixTuningConfig(config: PrefixTuningConfig): PrefixTuningConfig {
  const fail = (field: string, message: string): never => {
    throw new AdapterConfigError(`prefix tuning config: ${message}`, field);
  };
  if (config.numVirtualTokens === null) fail('num_virtual_tokens', 'num_virtual_tokens is required');
  if (config.numTransformerSubmodules !== null && config.numTransformerSubmodules !== 1) {
    fail(
      'num_transformer_submodules',
      `num_transformer_submodules ${config.numTransformerSubmodules} (encoder-decoder models) is not supported; decoder-only models use 1`,
    );
  }
  if (config.taskType !== null && config.taskType !== 'CAUSAL_LM') {
    fail(
      'task_type',
      `task_type "${config.taskType}" is not supported (the models here are causal LMs: "CAUSAL_LM")`,
    );
  }
  if (config.modulesToSave !== null && config.modulesToSave.length > 0) {
    fail('modules_to_save', 'modules_to_save is not supported with prefix tuning by @peft/prefix');
  }
  if (
    config.tokenDim !== null &&
    config.numAttentionHeads !== null &&
    config.tokenDim % config.numAttentionHeads !== 0
  ) {
    fail(
      'token_dim',
      `token_dim ${config.tokenDim} is not a multiple of num_attention_heads ${config.numAttentionHeads}`,
    );
  }
  return config;
}

/** Reads adapter_config.json content (snake_case) into a validated config; unknown keys are ignored with a warning. */
export function parsePrefixTuningConfig(
  json: unknown,
  options: ParseAdapterConfigOptions = {},
): PrefixTuningConfig {
  return validatePrefixTuningConfig(prefixTuningConfigSchema.parse(json, options) as PrefixTuningConfig);
}

/** adapter_config.json content for a config, every field PEFT writes included. */
export function prefixTuningConfigToJson(config: PrefixTuningConfig): AdapterConfigJson {
  return prefixTuningConfigSchema.toJson(validatePrefixTuningConfig(config));
}

/**
 * A validated prefix-tuning config from the fields you set (camelCase), PEFT's defaults for the rest:
 * `prefixTuningConfig({ numVirtualTokens: 20, prefixProjection: true })`.
 */
export function prefixTuningConfig(fields: PrefixTuningConfigInput = {}): PrefixTuningConfig {
  const merged = {
    ...prefixTuningConfigSchema.defaults(),
    ...fields,
    peftType: 'PREFIX_TUNING',
  } as PrefixTuningConfig;
  return parsePrefixTuningConfig(prefixTuningConfigSchema.toJson(merged));
}

/** The shape of a model's attention that the prefix must fit (`PrefixableModel.attentionInfo`). */
export interface PrefixAttentionShape {
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
}

/** A config with every field the encoder needs set (numbers, not null). */
export type CompletePrefixTuningConfig = PrefixTuningConfig & {
  numVirtualTokens: number;
  tokenDim: number;
  numAttentionHeads: number;
  numLayers: number;
  encoderHiddenSize: number;
  numTransformerSubmodules: 1;
};

/**
 * Fill the fields PEFT takes from the model (`_prepare_prompt_learning_config`): `num_layers`,
 * `token_dim = head_dim · num_key_value_heads` and `num_attention_heads = num_key_value_heads` (PEFT's
 * grouped-query rule; for GPT-2 these are `n_embd` and `n_head`), `encoder_hidden_size = token_dim`,
 * `num_transformer_submodules = 1`, `task_type = "CAUSAL_LM"`. Values already set must agree with the
 * model. Returns a new config.
 */
export function completePrefixTuningConfig(
  config: PrefixTuningConfig,
  shape: PrefixAttentionShape,
): CompletePrefixTuningConfig {
  const given = validatePrefixTuningConfig({ ...prefixTuningConfigSchema.defaults(), ...config });
  const fromModel = {
    numLayers: ['num_layers', shape.numLayers],
    tokenDim: ['token_dim', shape.headDim * shape.numKeyValueHeads],
    numAttentionHeads: ['num_attention_heads', shape.numKeyValueHeads],
  } as const;
  for (const [key, [field, value]] of Object.entries(fromModel)) {
    const set = given[key as keyof typeof fromModel];
    if (set !== null && set !== value) {
      throw new AdapterConfigError(
        `prefix tuning config: ${field} is ${set} but the model's attention needs ${value}` +
          ` (${shape.numLayers} layers, ${shape.numKeyValueHeads} key/value heads of ${shape.headDim})`,
        field,
      );
    }
  }
  const tokenDim = fromModel.tokenDim[1];
  return {
    ...given,
    taskType: given.taskType ?? 'CAUSAL_LM',
    numLayers: fromModel.numLayers[1],
    tokenDim,
    numAttentionHeads: fromModel.numAttentionHeads[1],
    numTransformerSubmodules: 1,
    encoderHiddenSize: given.encoderHiddenSize ?? tokenDim,
  } as CompletePrefixTuningConfig;
}
