import { AdapterConfigError, serializeAdapterConfig } from '@peft/core';
import { describe, expect, it } from 'vitest';
import {
  completePrefixTuningConfig,
  parsePrefixTuningConfig,
  prefixTuningConfig,
  prefixTuningConfigToJson,
} from './config.js';

const GPT2_SMALL = { numLayers: 12, numKeyValueHeads: 12, headDim: 64 };

describe('PrefixTuningConfig', () => {
  it("has PEFT's fields and defaults", () => {
    const config = prefixTuningConfig({ numVirtualTokens: 20 });
    expect(config).toMatchObject({
      peftType: 'PREFIX_TUNING',
      numVirtualTokens: 20,
      prefixProjection: false,
      initWeights: null,
      encoderHiddenSize: null,
      numLayers: null,
      tokenDim: null,
      numAttentionHeads: null,
      numTransformerSubmodules: null,
      modulesToSave: null,
      inferenceMode: false,
      taskType: null,
    });
    expect(Object.keys(prefixTuningConfigToJson(config)).sort()).toEqual([
      'auto_mapping',
      'base_model_name_or_path',
      'encoder_hidden_size',
      'inference_mode',
      'init_weights',
      'modules_to_save',
      'num_attention_heads',
      'num_layers',
      'num_transformer_submodules',
      'num_virtual_tokens',
      'peft_type',
      'peft_version',
      'prefix_projection',
      'revision',
      'task_type',
      'token_dim',
    ]);
  });

  it('reads and writes adapter_config.json as PEFT does (GPT-2 small, from the spec)', () => {
    const text = `{
  "auto_mapping": null,
  "base_model_name_or_path": "gpt2",
  "encoder_hidden_size": 768,
  "inference_mode": true,
  "init_weights": null,
  "modules_to_save": null,
  "num_attention_heads": 12,
  "num_layers": 12,
  "num_transformer_submodules": 1,
  "num_virtual_tokens": 20,
  "peft_type": "PREFIX_TUNING",
  "peft_version": "0.21.0",
  "prefix_projection": false,
  "revision": null,
  "task_type": "CAUSAL_LM",
  "token_dim": 768
}`;
    const config = parsePrefixTuningConfig(JSON.parse(text));
    expect(config.numVirtualTokens).toBe(20);
    expect(serializeAdapterConfig(prefixTuningConfigToJson(config))).toBe(text);
  });

  it('refuses what it does not implement, naming the field', () => {
    const bad = (json: Record<string, unknown>) => () =>
      parsePrefixTuningConfig({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: 4, ...json });
    expect(bad({ num_virtual_tokens: null })).toThrow(/num_virtual_tokens is required/);
    expect(bad({ init_weights: 'gaussian' })).toThrow(/init_weights/);
    expect(bad({ num_transformer_submodules: 2 })).toThrow(/encoder-decoder/);
    expect(bad({ task_type: 'SEQ_CLS' })).toThrow(/task_type "SEQ_CLS" is not supported/);
    expect(bad({ modules_to_save: ['lm_head'] })).toThrow(/modules_to_save is not supported/);
    expect(bad({ token_dim: 10, num_attention_heads: 4 })).toThrow(/not a multiple/);
    try {
      bad({ num_virtual_tokens: 0 })();
    } catch (error) {
      expect(error).toBeInstanceOf(AdapterConfigError);
      expect((error as AdapterConfigError).field).toBe('num_virtual_tokens');
    }
  });

  it('takes num_layers, token_dim and num_attention_heads from the model as PEFT does', () => {
    const complete = completePrefixTuningConfig(prefixTuningConfig({ numVirtualTokens: 20 }), GPT2_SMALL);
    expect(complete).toMatchObject({
      numLayers: 12,
      tokenDim: 768,
      numAttentionHeads: 12,
      encoderHiddenSize: 768,
      numTransformerSubmodules: 1,
      taskType: 'CAUSAL_LM',
    });
    // Grouped-query attention: token_dim = head_dim · num_key_value_heads, heads = num_key_value_heads.
    const gqa = completePrefixTuningConfig(
      prefixTuningConfig({ numVirtualTokens: 5, prefixProjection: true, encoderHiddenSize: 7 }),
      { numLayers: 2, numKeyValueHeads: 2, headDim: 8 },
    );
    expect(gqa).toMatchObject({ tokenDim: 16, numAttentionHeads: 2, encoderHiddenSize: 7 });
  });

  it('refuses model-derived fields that disagree with the model', () => {
    expect(() =>
      completePrefixTuningConfig(prefixTuningConfig({ numVirtualTokens: 2, tokenDim: 32 }), {
        numLayers: 2,
        numKeyValueHeads: 2,
        headDim: 8,
      }),
    ).toThrow(/token_dim is 32 but the model's attention needs 16/);
    expect(() =>
      completePrefixTuningConfig(prefixTuningConfig({ numVirtualTokens: 2, numLayers: 3 }), GPT2_SMALL),
    ).toThrow(/num_layers is 3 but the model's attention needs 12/);
  });
});
