import { AdapterConfigError, serializeAdapterConfig } from '@peft/core';
import { loraConfig, loraConfigToJson } from '@peft/lora';
import { describe, expect, it } from 'vitest';
import { deltaLoraConfig, deltaLoraConfigToJson, loraPart, parseDeltaLoraConfig } from './config.js';

describe('DeltaLoraConfig', () => {
  it("has LoRA's fields and defaults plus λ = 2, K = 500 (the paper's), dropout 0", () => {
    const config = deltaLoraConfig();
    expect(config).toMatchObject({
      peftType: 'DELTA_LORA',
      r: 8,
      loraAlpha: 8,
      loraDropout: 0,
      targetModules: null,
      deltaUpdateRatio: 2,
      updateStartSteps: 500,
      stepsTaken: 0,
    });
    // Every field LoRA writes, with the same values, then Delta-LoRA's.
    const json = deltaLoraConfigToJson(config);
    const lora = loraConfigToJson(loraConfig());
    for (const [key, value] of Object.entries(lora)) {
      if (key !== 'peft_type') expect(json[key], key).toEqual(value);
    }
    expect(json).toMatchObject({
      peft_type: 'DELTA_LORA',
      delta_update_ratio: 2,
      update_start_steps: 500,
      steps_taken: 0,
    });
    expect(Object.keys(json).length).toBe(Object.keys(lora).length + 3);
    // Floats as Python writes them.
    const text = serializeAdapterConfig(json);
    expect(text).toContain('"delta_update_ratio": 2.0');
    expect(text).toContain('"lora_dropout": 0.0');
    expect(text).toContain('"update_start_steps": 500,');
  });

  it('reads what it writes', () => {
    const config = deltaLoraConfig({
      r: 4,
      loraAlpha: 16,
      targetModules: ['c_attn', 'c_fc'],
      rankPattern: { c_fc: 2 },
      useRslora: true,
      deltaUpdateRatio: 0.5,
      updateStartSteps: 10,
      stepsTaken: 3,
      taskType: 'CAUSAL_LM',
    });
    const text = serializeAdapterConfig(deltaLoraConfigToJson(config));
    const read = parseDeltaLoraConfig(JSON.parse(text), { onWarning: (m) => expect.fail(m) });
    expect(read).toEqual(config);
    expect(serializeAdapterConfig(deltaLoraConfigToJson(read))).toBe(text);
  });

  it('refuses dropout on the low-rank branch, naming the field', () => {
    expect(() => deltaLoraConfig({ loraDropout: 0.1 })).toThrow(/lora_dropout must be 0/);
    try {
      parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', lora_dropout: 0.05 });
      expect.fail('accepted dropout');
    } catch (error) {
      expect(error).toBeInstanceOf(AdapterConfigError);
      expect((error as AdapterConfigError).field).toBe('lora_dropout');
    }
    expect(() => deltaLoraConfig({ loraBias: true })).toThrow(/lora_bias is not supported/);
  });

  it("checks Delta-LoRA's fields and LoRA's", () => {
    expect(() => parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', delta_update_ratio: -1 })).toThrow(
      /"delta_update_ratio" must be a non-negative number/,
    );
    expect(() => parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', update_start_steps: 1.5 })).toThrow(
      /"update_start_steps" must be an integer/,
    );
    expect(() => parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', r: 0 })).toThrow(
      /"r" must be a positive integer/,
    );
    expect(() => parseDeltaLoraConfig({ peft_type: 'LORA' })).toThrow(/expected "DELTA_LORA"/);
    expect(() => parseDeltaLoraConfig({ peft_type: 'DELTA_LORA', use_dora: true })).toThrow(/DoRA/);
  });

  it('ignores unknown keys with one warning', () => {
    const warnings: string[] = [];
    const config = parseDeltaLoraConfig(
      { peft_type: 'DELTA_LORA', r: 4, update_start_steps: 3, future_field: 1 },
      { onWarning: (m) => warnings.push(m) },
    );
    expect(config).toMatchObject({ r: 4, updateStartSteps: 3 });
    expect(warnings).toEqual(['adapter_config.json: ignoring keys unknown to DELTA_LORA: "future_field"']);
  });

  it('has a LoRA part that is a valid LoRA config', () => {
    const part = loraPart(deltaLoraConfig({ r: 4, updateStartSteps: 7 }));
    expect(part.peftType).toBe('LORA');
    expect(part).not.toHaveProperty('updateStartSteps');
    expect(loraConfigToJson(part).r).toBe(4);
  });
});
