import { ACTIVATIONS } from '../activations.js';
import { ConfigReader, type ModelConfigJson } from '../config.js';
import { ropeSpec } from './rope.js';

/** The `model_type`s that share the LLaMA decoder (pre-RMSNorm, RoPE, GQA, SwiGLU). */
export const LLAMA_FAMILY = ['llama', 'mistral', 'qwen2'] as const;
export type LlamaFamilyType = (typeof LLAMA_FAMILY)[number];

/** transformers' `LlamaConfig` fields used here (config.json names); other fields are kept as read. */
export interface LlamaConfig extends ModelConfigJson {
  model_type: LlamaFamilyType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  hidden_act: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  initializer_range: number;
  tie_word_embeddings: boolean;
  /** Bias on q, k, v, o (llama, mistral); qwen2 always has q/k/v biases and no o bias. */
  attention_bias: boolean;
  mlp_bias: boolean;
  /** Dropout on the attention probabilities during training (transformers' default 0.0). */
  attention_dropout: number;
  /** `{ rope_type, rope_theta, ... }` (transformers 5), or legacy `rope_theta` / `rope_scaling`. */
  rope_parameters?: Record<string, unknown> | null;
  rope_theta?: number;
  rope_scaling?: Record<string, unknown> | null;
}

export const LLAMA_FLOAT_KEYS = ['attention_dropout', 'initializer_range', 'rms_norm_eps', 'rope_theta'];

interface FamilyDefaults {
  vocab: number;
  tie: boolean;
  maxPositions: number;
  architecture: string;
  /** Fields of LlamaConfig that this model type's transformers config lacks. */
  notInConfig: readonly (keyof LlamaConfig)[];
}

const DEFAULTS: Record<LlamaFamilyType, FamilyDefaults> = {
  llama: { vocab: 32000, tie: false, maxPositions: 2048, architecture: 'LlamaForCausalLM', notInConfig: [] },
  mistral: {
    vocab: 32000,
    tie: false,
    maxPositions: 4096 * 32,
    architecture: 'MistralForCausalLM',
    notInConfig: ['attention_bias', 'mlp_bias'],
  },
  qwen2: {
    vocab: 151936,
    tie: false,
    maxPositions: 32768,
    architecture: 'Qwen2ForCausalLM',
    notInConfig: ['attention_bias', 'mlp_bias', 'head_dim'],
  },
};

/** Sliding-window attention length when some layer uses it (mistral, qwen2 with `use_sliding_window`). */
export function slidingWindow(config: LlamaConfig): number | null {
  const window = typeof config.sliding_window === 'number' ? config.sliding_window : null;
  if (config.model_type === 'mistral') return window;
  if (config.model_type === 'qwen2') {
    const layerTypes = Array.isArray(config.layer_types) ? config.layer_types : [];
    return config.use_sliding_window === true && layerTypes.includes('sliding_attention') ? window : null;
  }
  return null;
}

/** A complete LLaMA-family config from config.json fields (transformers' defaults for missing ones). */
export function llamaConfig(json: Partial<LlamaConfig> & Record<string, unknown> = {}): LlamaConfig {
  const modelType = (json.model_type ?? 'llama') as LlamaFamilyType;
  const r = new ConfigReader(json, String(modelType));
  if (!LLAMA_FAMILY.includes(modelType)) {
    r.unsupported('model_type', `model_type "${modelType}" is not one of ${LLAMA_FAMILY.join(', ')}`);
  }
  const defaults = DEFAULTS[modelType];
  const hidden = r.int('hidden_size', 4096);
  const heads = r.int('num_attention_heads', 32);
  const kvHeads = r.int('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) {
    r.unsupported(
      'num_key_value_heads',
      `num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`,
    );
  }
  if (!r.has('head_dim') && hidden % heads !== 0) {
    r.unsupported(
      'num_attention_heads',
      `hidden_size (${hidden}) must be divisible by num_attention_heads (${heads})`,
    );
  }
  const headDim = r.int('head_dim', Math.floor(hidden / heads));
  if (headDim % 2 !== 0) r.unsupported('head_dim', `head_dim (${headDim}) must be even for RoPE`);
  const act = r.string('hidden_act', 'silu');
  if (!(act in ACTIVATIONS)) {
    r.unsupported(
      'hidden_act',
      `hidden_act "${act}" is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  }
  if (r.number('pretraining_tp', 1) !== 1)
    r.unsupported('pretraining_tp', 'pretraining_tp other than 1 is not supported');
  const config: LlamaConfig = {
    ...json,
    model_type: modelType,
    vocab_size: r.int('vocab_size', defaults.vocab),
    hidden_size: hidden,
    intermediate_size: r.int('intermediate_size', 11008),
    num_hidden_layers: r.int('num_hidden_layers', 32),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_act: act,
    max_position_embeddings: r.int('max_position_embeddings', defaults.maxPositions),
    rms_norm_eps: r.number('rms_norm_eps', 1e-6, { min: 0 }),
    initializer_range: r.number('initializer_range', 0.02, { min: 0 }),
    tie_word_embeddings: r.bool('tie_word_embeddings', defaults.tie),
    attention_bias: r.bool('attention_bias', false),
    mlp_bias: r.bool('mlp_bias', false),
    attention_dropout: r.number('attention_dropout', 0, { min: 0, max: 0.999 }),
  };
  r.tokenIds('bos_token_id', null);
  r.tokenIds('eos_token_id', null);
  config.architectures ??= [defaults.architecture];
  // Fields this model type's transformers config does not have stay readable but are not saved.
  for (const key of defaults.notInConfig) {
    if (!(key in json)) Object.defineProperty(config, key, { value: config[key], enumerable: false });
  }
  ropeSpec(config); // validates the RoPE settings now rather than at the first forward
  return config;
}
