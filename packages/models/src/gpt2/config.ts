import { ACTIVATIONS } from '../activations.js';
import { ConfigReader, type ModelConfigJson } from '../config.js';

/** transformers' `GPT2Config` fields used here (config.json names); other fields are kept as read. */
export interface GPT2Config extends ModelConfigJson {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; null means 4·n_embd. */
  n_inner: number | null;
  activation_function: string;
  resid_pdrop: number;
  embd_pdrop: number;
  attn_pdrop: number;
  layer_norm_epsilon: number;
  initializer_range: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | number[] | null;
  eos_token_id: number | number[] | null;
}

/** Keys that Python writes as floats even when integral (`0.0`), so saved JSON matches transformers'. */
export const GPT2_FLOAT_KEYS = [
  'attn_pdrop',
  'embd_pdrop',
  'resid_pdrop',
  'layer_norm_epsilon',
  'initializer_range',
  'summary_first_dropout',
];

/** A complete GPT-2 config from config.json fields (transformers' defaults for the missing ones). */
export function gpt2Config(json: Partial<GPT2Config> & Record<string, unknown> = {}): GPT2Config {
  const r = new ConfigReader(json, 'gpt2');
  if (r.has('model_type') && json.model_type !== 'gpt2') {
    r.unsupported('model_type', `model_type "${json.model_type}" is not gpt2`);
  }
  const nEmbd = r.int('n_embd', 768);
  const nHead = r.int('n_head', 12);
  if (nEmbd % nHead !== 0)
    r.unsupported('n_head', `n_embd (${nEmbd}) must be divisible by n_head (${nHead})`);
  const activation = r.string('activation_function', 'gelu_new');
  if (!(activation in ACTIVATIONS)) {
    r.unsupported(
      'activation_function',
      `activation_function "${activation}" is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  }
  if (r.bool('add_cross_attention', false))
    r.unsupported('add_cross_attention', 'add_cross_attention is not supported');
  const probability = { min: 0, max: 0.999 };
  const config: GPT2Config = {
    ...json,
    model_type: 'gpt2',
    vocab_size: r.int('vocab_size', 50257),
    n_positions: r.int('n_positions', 1024),
    n_embd: nEmbd,
    n_layer: r.int('n_layer', 12),
    n_head: nHead,
    n_inner: r.optionalInt('n_inner'),
    activation_function: activation,
    resid_pdrop: r.number('resid_pdrop', 0.1, probability),
    embd_pdrop: r.number('embd_pdrop', 0.1, probability),
    attn_pdrop: r.number('attn_pdrop', 0.1, probability),
    layer_norm_epsilon: r.number('layer_norm_epsilon', 1e-5, { min: 0 }),
    initializer_range: r.number('initializer_range', 0.02, { min: 0 }),
    scale_attn_weights: r.bool('scale_attn_weights', true),
    scale_attn_by_inverse_layer_idx: r.bool('scale_attn_by_inverse_layer_idx', false),
    tie_word_embeddings: r.bool('tie_word_embeddings', true),
    bos_token_id: r.has('bos_token_id') ? (json.bos_token_id as number) : 50256,
    eos_token_id: r.has('eos_token_id') ? (json.eos_token_id as number) : 50256,
  };
  r.tokenIds('bos_token_id', null);
  r.tokenIds('eos_token_id', null);
  config.architectures ??= ['GPT2LMHeadModel'];
  return config;
}
