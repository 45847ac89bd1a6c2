import type { CausalLM } from './causal_lm.js';
import { ModelConfigError, type ModelConfigJson } from './config.js';
import { GPT2_FLOAT_KEYS, type GPT2Config, gpt2Config } from './gpt2/config.js';
import { GPT2LMHeadModel } from './gpt2/model.js';
import { LLAMA_FAMILY, LLAMA_FLOAT_KEYS, type LlamaConfig, llamaConfig } from './llama/config.js';
import { LlamaForCausalLM } from './llama/model.js';
import type { WeightSource } from './weights.js';

/** How one family of checkpoints maps to a model class. */
export interface Architecture {
  readonly modelTypes: readonly string[];
  /** Config keys that Python writes as floats (`0.0`), for config.json text like transformers'. */
  readonly floatKeys: readonly string[];
  create(config: ModelConfigJson, weights?: WeightSource): CausalLM;
  /**
   * The model name for a checkpoint tensor name, or null for tensors transformers also skips
   * (non-persistent buffers, a tied head's copy). `names` holds every name in the checkpoint.
   */
  modelKey(name: string, config: ModelConfigJson, names: ReadonlySet<string>): string | null;
}

const gpt2: Architecture = {
  modelTypes: ['gpt2'],
  floatKeys: GPT2_FLOAT_KEYS,
  create: (config, weights) => new GPT2LMHeadModel(config as Partial<GPT2Config>, weights ? { weights } : {}),
  modelKey(name, config, names) {
    if (/(^|\.)attn\.(masked_)?bias$/.test(name)) return null; // causal-mask buffers of old checkpoints
    if (name === 'lm_head.weight')
      return gpt2Config(config as Partial<GPT2Config>).tie_word_embeddings ? null : name;
    // Checkpoints saved from GPT2Model (the original `gpt2` repo) lack the `transformer.` prefix.
    const bare = !names.has('transformer.wte.weight') && names.has('wte.weight');
    return bare ? `transformer.${name}` : name;
  },
};

const llama: Architecture = {
  modelTypes: LLAMA_FAMILY,
  floatKeys: LLAMA_FLOAT_KEYS,
  create: (config, weights) =>
    new LlamaForCausalLM(config as Partial<LlamaConfig>, weights ? { weights } : {}),
  modelKey(name, config) {
    if (name.endsWith('.rotary_emb.inv_freq')) return null;
    if (name === 'lm_head.weight' && llamaConfig(config as Partial<LlamaConfig>).tie_word_embeddings)
      return null;
    return name;
  },
};

const ARCHITECTURES: readonly Architecture[] = [gpt2, llama];

/** Every `model_type` this package can build. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = ARCHITECTURES.flatMap((a) => a.modelTypes);

export function architectureFor(modelType: string): Architecture {
  const found = ARCHITECTURES.find((a) => a.modelTypes.includes(modelType));
  if (!found) {
    throw new ModelConfigError(
      `unsupported model_type "${modelType}" (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`,
      'model_type',
    );
  }
  return found;
}

/**
 * A randomly initialised model (seeded by core's `manualSeed`) from config fields, e.g.
 * `createModel({ model_type: 'gpt2', vocab_size: 256, n_embd: 64, n_layer: 2, n_head: 4 })`.
 */
export function createModel(config: ModelConfigJson): CausalLM {
  return architectureFor(config.model_type).create(config);
}
