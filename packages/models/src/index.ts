// @peft/models: GPT-2 and LLaMA-family causal LMs with Hugging Face names, checkpoints, tokenizers
// and generation. Browser-safe; Node folder helpers are in `@peft/models/node`.
export { ACTIVATIONS, type Activation, geluExact } from './activations.js';
export { type Architecture, architectureFor, createModel, SUPPORTED_MODEL_TYPES } from './architectures.js';
export {
  AttentionContext,
  type AttentionInfo,
  type CausalLM,
  CausalLMBase,
  type CausalLMInput,
  type CausalLMOutput,
  type TokenIdsLike,
} from './causal_lm.js';
export { causalLMLoss } from './causal_lm_loss.js';
export {
  CONFIG_FILE,
  type LoadModelOptions,
  loadModel,
  ModelLoadError,
  modelFiles,
  type SaveModelOptions,
  saveModelFiles,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from './checkpoint.js';
export {
  type CheckpointFile,
  type CheckpointFiles,
  checkpointFilesFrom,
  type FileData,
  type ModelFiles,
} from './checkpoint_files.js';
export { ModelConfigError, type ModelConfigJson, parseConfigJson } from './config.js';
export { type GenerateOptions, generate } from './generate.js';
export { type GPT2Config, gpt2Config } from './gpt2/config.js';
export { GPT2Attention, GPT2Block, GPT2LMHeadModel, GPT2MLP, GPT2Model } from './gpt2/model.js';
export { KVBuffer } from './kv_buffer.js';
export { KVCache } from './kv_cache.js';
export { childLayer, type Layer } from './layer.js';
export { LLAMA_FAMILY, type LlamaConfig, llamaConfig } from './llama/config.js';
export { LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP, LlamaModel } from './llama/model.js';
export { ROPE_TYPES, type RopeSpec, RotaryEmbedding, ropeSpec } from './llama/rope.js';
export {
  ByteTokenizer,
  type DecodeOptions,
  type EncodeOptions,
  HuggingFaceTokenizer,
  loadTokenizer,
  type Tokenizer,
  TokenizerLoadError,
} from './tokenizer.js';
export { type LinearSpec, type ModelOptions, ModuleBuilder, type WeightSource } from './weights.js';
