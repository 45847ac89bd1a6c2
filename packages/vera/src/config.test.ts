import { readFileSync } from 'node:fs';
import { AdapterConfigError, serializeAdapterConfig } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { parseVeraConfig, veraConfig, veraConfigToJson, veraTargetModules } from './config.js';

const fixture = (path: string) => readFileSync(new URL(`../fixtures/${path}`, import.meta.url), 'utf8');

describe('VeraConfig', () => {
  it("has PEFT's fields and defaults: VeraConfig() is written exactly as PEFT writes it", () => {
    const config = veraConfig({ peftVersion: '0.21.0' });
    expect(config).toMatchObject({
      peftType: 'VERA',
      r: 256,
      targetModules: null,
      projectionPrngKey: 0,
      saveProjection: true,
      veraDropout: 0,
      dInitial: 0.1,
      fanInFanOut: false,
      bias: 'none',
      modulesToSave: null,
      initWeights: true,
      layersToTransform: null,
      layersPattern: null,
    });
    expect(serializeAdapterConfig(veraConfigToJson(config))).toBe(
      fixture('default-config/adapter_config.json'),
    );
  });

  it('reads every PEFT fixture config and writes it back byte for byte', () => {
    for (const folder of [
      'peft-gpt2',
      'peft-gpt2/second',
      'peft-gpt2-no-projection',
      'peft-llama',
      'peft-llama-all-linear',
    ]) {
      const text = fixture(`${folder}/adapter_config.json`);
      const config = parseVeraConfig(JSON.parse(text), { onWarning: (m) => expect.fail(m) });
      expect(serializeAdapterConfig(veraConfigToJson(config)), folder).toBe(text);
    }
    const gpt2 = parseVeraConfig(JSON.parse(fixture('peft-gpt2/adapter_config.json')));
    expect(gpt2).toMatchObject({ r: 8, projectionPrngKey: 42, dInitial: 0.05, fanInFanOut: true });
  });

  it('ignores unknown keys with a warning, as PEFT does', () => {
    const warnings: string[] = [];
    const config = parseVeraConfig(
      { peft_type: 'VERA', r: 4, some_future_field: 1 },
      { onWarning: (m) => warnings.push(m) },
    );
    expect(config.r).toBe(4);
    expect(warnings).toEqual(['adapter_config.json: ignoring keys unknown to VERA: "some_future_field"']);
  });

  it('refuses what PEFT refuses and what this package does not implement, naming the field', () => {
    const refused = (fields: Parameters<typeof veraConfig>[0], pattern: RegExp) => {
      let error: unknown;
      try {
        veraConfig(fields);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AdapterConfigError);
      expect((error as Error).message).toMatch(pattern);
    };
    refused({ r: 0 }, /field "r" must be a positive integer/);
    refused({ bias: 'vera_only' }, /bias "vera_only" is not supported/);
    refused({ veraDropout: 1 }, /field "vera_dropout" must be less than 1/);
    refused({ layersPattern: 'h' }, /`layers_to_transform` must also be specified/);
    refused({ projectionPrngKey: 1.5 }, /field "projection_prng_key" must be an integer/);
    expect(() => parseVeraConfig({ peft_type: 'LORA' })).toThrow(/"peft_type" is "LORA", expected "VERA"/);
  });

  it("uses PEFT's default targets (LoRA's table, phi: attention only)", () => {
    const config = veraConfig();
    expect(veraTargetModules(config, 'gpt2')).toEqual(['c_attn']);
    expect(veraTargetModules(config, 'llama')).toEqual(['q_proj', 'v_proj']);
    expect(veraTargetModules(config, 'phi')).toEqual(['q_proj', 'v_proj']);
    expect(() => veraTargetModules(config, 'mystery')).toThrow(/no default for model type "mystery"/);
    expect(veraTargetModules(veraConfig({ targetModules: 'all-linear' }), 'gpt2')).toBe('all-linear');
  });
});
