import { readFileSync } from 'node:fs';
import { AdapterConfigError, serializeAdapterConfig } from '@peft/core';
import { describe, expect, it } from 'vitest';
import {
  loraConfig,
  loraConfigToJson,
  loraTargetModules,
  parseLoraConfig,
  patternKey,
  rankAndAlpha,
} from './config.js';

const fixture = (path: string) => readFileSync(new URL(`../fixtures/${path}`, import.meta.url), 'utf8');

describe('LoraConfig', () => {
  it("has PEFT's fields and defaults: LoraConfig() is written exactly as PEFT writes it", () => {
    const config = loraConfig({ peftVersion: '0.21.0' });
    expect(config).toMatchObject({
      peftType: 'LORA',
      r: 8,
      loraAlpha: 8,
      loraDropout: 0,
      targetModules: null,
      fanInFanOut: false,
      bias: 'none',
      useRslora: false,
      initLoraWeights: true,
      modulesToSave: null,
      rankPattern: {},
      alphaPattern: {},
    });
    expect(serializeAdapterConfig(loraConfigToJson(config))).toBe(
      fixture('default-config/adapter_config.json'),
    );
  });

  it('reads every PEFT fixture config and writes it back byte for byte', () => {
    for (const folder of ['peft-gpt2', 'peft-gpt2-rslora', 'peft-llama', 'peft-llama-all-linear-rslora']) {
      const text = fixture(`${folder}/adapter_config.json`);
      const config = parseLoraConfig(JSON.parse(text), { onWarning: (m) => expect.fail(m) });
      expect(serializeAdapterConfig(loraConfigToJson(config)), folder).toBe(text);
    }
    const rslora = parseLoraConfig(JSON.parse(fixture('peft-gpt2-rslora/adapter_config.json')));
    expect(rslora).toMatchObject({
      useRslora: true,
      r: 8,
      rankPattern: { 'h.1.attn.c_attn': 2 },
      fanInFanOut: true,
    });
  });

  it('ignores unknown keys with a warning, as PEFT does', () => {
    const warnings: string[] = [];
    const config = parseLoraConfig(
      { peft_type: 'LORA', r: 4, some_future_field: 1 },
      { onWarning: (m) => warnings.push(m) },
    );
    expect(config.r).toBe(4);
    expect(warnings).toEqual(['adapter_config.json: ignoring keys unknown to LORA: "some_future_field"']);
  });

  it('names the problem: r <= 0, wrong peft_type, bad patterns, unsupported variants', () => {
    expect(() => loraConfig({ r: 0 })).toThrow(/field "r" must be a positive integer \(got 0\)/);
    expect(() => parseLoraConfig({ peft_type: 'LORA', r: -1 })).toThrow(
      /field "r" must be a positive integer/,
    );
    expect(() => parseLoraConfig({ peft_type: 'VERA', r: 4 })).toThrow(
      /"peft_type" is "VERA", expected "LORA"/,
    );
    expect(() => loraConfig({ rankPattern: { c_attn: 0 } })).toThrow(
      /field "rank_pattern"\["c_attn"\] must be a positive/,
    );
    expect(() => loraConfig({ loraDropout: 1 })).toThrow(/field "lora_dropout" must be less than 1/);
    const refusals: [Parameters<typeof loraConfig>[0], RegExp][] = [
      [{ useDora: true }, /use_dora \(DoRA\) is not supported/],
      [{ bias: 'all' }, /bias "all" is not supported/],
      [{ initLoraWeights: 'pissa' }, /init_lora_weights "pissa" is not supported/],
      [{ layerReplication: [[0, 1]] }, /layer_replication .* is not supported/],
      [{ targetModules: '.*c_attn', layersToTransform: [0] }, /`layers_to_transform` cannot be used/],
      [{ targetModules: ['c_attn'], layersPattern: 'h' }, /`layers_to_transform` must also be specified/],
    ];
    for (const [fields, message] of refusals) {
      let error: unknown;
      try {
        loraConfig(fields);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(fields)).toBeInstanceOf(AdapterConfigError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

describe('rank_pattern / alpha_pattern (PEFT get_pattern_key)', () => {
  it('matches a key as a regex on the end of the name at a dot boundary, first key wins', () => {
    const keys = ['h.1.attn.c_attn', 'c_fc', 'layers\\.[01]\\.mlp\\..*'];
    expect(patternKey(keys, 'transformer.h.1.attn.c_attn')).toBe('h.1.attn.c_attn');
    expect(patternKey(keys, 'transformer.h.11.attn.c_attn')).toBeNull();
    expect(patternKey(keys, 'transformer.h.0.mlp.c_fc')).toBe('c_fc');
    expect(patternKey(keys, 'transformer.h.0.mlp.xc_fc')).toBeNull();
    expect(patternKey(keys, 'model.layers.1.mlp.down_proj')).toBe('layers\\.[01]\\.mlp\\..*');
    const config = loraConfig({
      r: 8,
      loraAlpha: 16,
      rankPattern: { c_fc: 2 },
      alphaPattern: { 'h.0.mlp.c_fc': 3 },
    });
    expect(rankAndAlpha(config, 'transformer.h.0.mlp.c_fc')).toEqual({ r: 2, alpha: 3 });
    expect(rankAndAlpha(config, 'transformer.h.1.mlp.c_fc')).toEqual({ r: 2, alpha: 16 });
    expect(rankAndAlpha(config, 'transformer.h.1.attn.c_attn')).toEqual({ r: 8, alpha: 16 });
  });

  it("defaults target_modules by model type, as PEFT's table", () => {
    expect(loraTargetModules(loraConfig(), 'gpt2')).toEqual(['c_attn']);
    expect(loraTargetModules(loraConfig(), 'llama')).toEqual(['q_proj', 'v_proj']);
    expect(loraTargetModules(loraConfig({ targetModules: 'all-linear' }), 'gpt2')).toBe('all-linear');
    expect(() => loraTargetModules(loraConfig(), 'unknown-arch')).toThrow(
      /target_modules is not set and there is no default for model type "unknown-arch"/,
    );
  });
});
