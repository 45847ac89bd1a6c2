// How prefix tuning plugs into core (PEFT's `PeftModelForCausalLM` prompt-learning path): the config is
// completed from the model's attention, the encoder is set as the model's attention prefix provider,
// and the file holds one tensor, `prompt_embeddings`.
import {
  type AddAdapterOptions,
  getPeftModel,
  type Module,
  type ParseAdapterConfigOptions,
  type PeftModel,
  type PrefixableModel,
  type PromptEncoder,
  type PromptPeftMethod,
  peftModelFromConfigJson,
} from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  type CompletePrefixTuningConfig,
  completePrefixTuningConfig,
  type PrefixTuningConfig,
  type PrefixTuningConfigInput,
  parsePrefixTuningConfig,
  prefixTuningConfig,
  prefixTuningConfigToJson,
} from './config.js';
import { PrefixEncoder } from './layer.js';

/** The key of the one tensor in `adapter_model.safetensors`. */
export const PROMPT_EMBEDDINGS_KEY = 'prompt_embeddings';

function encoderOptions(config: CompletePrefixTuningConfig) {
  return {
    numVirtualTokens: config.numVirtualTokens,
    numLayers: config.numLayers,
    tokenDim: config.tokenDim,
    numHeads: config.numAttentionHeads,
    prefixProjection: config.prefixProjection,
    encoderHiddenSize: config.encoderHiddenSize,
    initWeights: config.initWeights,
    inferenceMode: config.inferenceMode,
  };
}

/** A config that has been through `completeConfig` (the core passes it back to every hook). */
function complete(config: PrefixTuningConfig, model: PrefixableModel): CompletePrefixTuningConfig {
  return completePrefixTuningConfig(config, model.attentionInfo);
}

/**
 * The prefix-tuning technique, registered as `"prefix"` (`peft_type: "PREFIX_TUNING"`). A prompt
 * technique: no layer is wrapped, so nothing can be merged (core's `merge` says so), and disabling
 * the adapter removes the prefix.
 */
export const prefixMethod: PromptPeftMethod<PrefixTuningConfig> = {
  kind: 'prompt',
  name: 'prefix',
  peftType: 'PREFIX_TUNING',
  tensorPrefix: 'prompt_encoder',
  config: { parse: parsePrefixTuningConfig, toJson: prefixTuningConfigToJson },
  completeConfig: complete,
  createEncoder(model, config): PromptEncoder {
    return new PrefixEncoder(encoderOptions(complete(config, model)));
  },
  savedTensors(encoder) {
    if (!(encoder instanceof PrefixEncoder)) throw new Error('prefix: the encoder is not a PrefixEncoder');
    return new Map([[PROMPT_EMBEDDINGS_KEY, encoder.savedEmbeddings()]]);
  },
  loadEncoder(model, config, tensors) {
    const full = complete(config, model);
    const unexpected = [...tensors.keys()].filter((key) => key !== PROMPT_EMBEDDINGS_KEY);
    const problems = unexpected.map((key) => `unexpected tensor "${key}"`);
    const embeddings = tensors.get(PROMPT_EMBEDDINGS_KEY);
    const shape = [full.numVirtualTokens, full.numLayers * 2 * full.tokenDim];
    if (!embeddings) problems.push(`missing tensor "${PROMPT_EMBEDDINGS_KEY}"`);
    else if (embeddings.rank !== 2 || embeddings.shape[0] !== shape[0] || embeddings.shape[1] !== shape[1]) {
      problems.push(
        `"${PROMPT_EMBEDDINGS_KEY}" has shape [${embeddings.shape}], the config needs [${shape}]` +
          ' (num_virtual_tokens, num_layers·2·token_dim)',
      );
    }
    if (problems.length > 0) throw new Error(`prefix adapter does not fit: ${problems.join('; ')}`);
    return new PrefixEncoder({
      ...encoderOptions(full),
      inferenceMode: true,
      weight: tf.cast(embeddings as tf.Tensor, 'float32'),
    });
  },
};

export interface PrefixTuningModelOptions extends AddAdapterOptions {
  /** Default `"default"`. */
  adapterName?: string;
}

/**
 * Add a prefix-tuning adapter to `model`, like PEFT's
 * `get_peft_model(model, PrefixTuningConfig(num_virtual_tokens=20, task_type="CAUSAL_LM"))`: the base
 * is frozen and only the prefix encoder trains.
 */
export function getPrefixTuningModel<M extends Module>(
  model: M,
  config: PrefixTuningConfigInput | PrefixTuningConfig,
  options: PrefixTuningModelOptions = {},
): PeftModel<M> {
  return getPeftModel(model, prefixMethod, prefixTuningConfig(config), options);
}

/**
 * Build a prefix-tuning `PeftModel` from config JSON: adapter_config.json text or its parsed object,
 * snake_case as PEFT writes it (`peft_type` may be left out; any other than `"PREFIX_TUNING"` is an
 * error): `prefixTuningModelFromConfigJson(model, '{"num_virtual_tokens": 20}')`.
 */
export function prefixTuningModelFromConfigJson<M extends Module>(
  model: M,
  json: string | Record<string, unknown>,
  options: PrefixTuningModelOptions & ParseAdapterConfigOptions = {},
): PeftModel<M> {
  return peftModelFromConfigJson(model, prefixMethod, json, options, 'prefix tuning');
}
