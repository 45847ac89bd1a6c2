// @peft/prefix: prefix tuning (Li & Liang 2021, arXiv 2101.00190) as Hugging Face PEFT implements it.
import { registerPeftMethod } from '@peft/core';
import { prefixMethod } from './model.js';

export {
  type CompletePrefixTuningConfig,
  completePrefixTuningConfig,
  type PrefixAttentionShape,
  type PrefixTuningConfig,
  type PrefixTuningConfigInput,
  parsePrefixTuningConfig,
  prefixTuningConfig,
  prefixTuningConfigSchema,
  prefixTuningConfigToJson,
  validatePrefixTuningConfig,
} from './config.js';
export { PrefixEncoder, type PrefixEncoderOptions } from './layer.js';
export {
  getPrefixTuningModel,
  PROMPT_EMBEDDINGS_KEY,
  type PrefixTuningModelOptions,
  prefixMethod,
  prefixTuningModelFromConfigJson,
} from './model.js';

registerPeftMethod(prefixMethod);
