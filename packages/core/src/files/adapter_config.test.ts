import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  AdapterConfigError,
  defineAdapterConfig,
  peekPeftType,
  pythonFloat,
  readAdapterConfig,
  serializeAdapterConfig,
} from './adapter_config.js';

// A LoRA-like config declared the way a technique package would (subset of PEFT's LoraConfig).
const loraLike = defineAdapterConfig({
  peftType: 'LORA',
  fields: {
    r: z.number().int().positive().default(8),
    lora_alpha: z.number().default(8),
    lora_dropout: pythonFloat().min(0).max(1).default(0),
    bias: z.enum(['none', 'all', 'lora_only']).default('none'),
    fan_in_fan_out: z.boolean().default(false),
    init_lora_weights: z.union([z.boolean(), z.enum(['gaussian'])]).default(true),
    lora_bias: z.boolean().default(false),
    use_dora: z.boolean().default(false),
    use_rslora: z.boolean().default(false),
    target_modules: z
      .union([z.string(), z.array(z.string())])
      .nullable()
      .default(null),
    modules_to_save: z.array(z.string()).nullable().default(null),
    rank_pattern: z.record(z.string(), z.number()).default({}),
    alpha_pattern: z.record(z.string(), z.number()).default({}),
    layers_to_transform: z
      .union([z.number().int(), z.array(z.number().int())])
      .nullable()
      .default(null),
    layers_pattern: z
      .union([z.string(), z.array(z.string())])
      .nullable()
      .default(null),
  },
});

// methods.md section 1: the minimal GPT-2 adapter_config.json as PEFT 0.21.0 wrote it, plus a few of
// the variant fields this demo schema does not know.
const peftExample = `{"base_model_name_or_path": null, "bias": "none", "fan_in_fan_out": true, "inference_mode": true,
 "init_lora_weights": true, "lora_alpha": 16, "lora_bias": false, "lora_dropout": 0.0,
 "modules_to_save": null, "peft_type": "LORA", "peft_version": "0.21.0", "r": 8,
 "rank_pattern": {}, "alpha_pattern": {}, "target_modules": ["c_attn"], "task_type": "CAUSAL_LM",
 "use_dora": false, "use_rslora": false, "layers_to_transform": null, "layers_pattern": null,
 "eva_config": null, "megatron_core": "megatron.core", "loftq_config": {}}`;

// What json.dumps(asdict(cfg), indent=2, sort_keys=True) prints for those fields plus PeftConfig's
// auto_mapping and revision: two-space indent, ", " never used, ": " after keys, no final newline.
const peftText = `{
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": null,
  "bias": "none",
  "fan_in_fan_out": true,
  "inference_mode": true,
  "init_lora_weights": true,
  "layers_pattern": null,
  "layers_to_transform": null,
  "lora_alpha": 16,
  "lora_bias": false,
  "lora_dropout": 0.0,
  "modules_to_save": null,
  "peft_type": "LORA",
  "peft_version": "0.21.0",
  "r": 8,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "c_attn"
  ],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": false
}`;

function parseExample(overrides: Record<string, unknown> = {}) {
  const json = { ...JSON.parse(peftExample), ...overrides };
  return loraLike.parse(json, { onWarning: () => {} });
}

function errorOf(run: () => unknown): AdapterConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterConfigError);
    return error as AdapterConfigError;
  }
  return expect.fail('expected an AdapterConfigError');
}

describe('defineAdapterConfig', () => {
  it("parses PEFT's own file into camelCase, warning once about unknown keys by name", () => {
    const warnings: string[] = [];
    const config = loraLike.parse(JSON.parse(peftExample), {
      onWarning: (message) => warnings.push(message),
    });
    expect(config).toEqual({
      peftType: 'LORA',
      taskType: 'CAUSAL_LM',
      baseModelNameOrPath: null,
      revision: null,
      inferenceMode: true,
      autoMapping: null,
      peftVersion: '0.21.0',
      r: 8,
      loraAlpha: 16,
      loraDropout: 0,
      bias: 'none',
      fanInFanOut: true,
      initLoraWeights: true,
      loraBias: false,
      useDora: false,
      useRslora: false,
      targetModules: ['c_attn'],
      modulesToSave: null,
      rankPattern: {},
      alphaPattern: {},
      layersToTransform: null,
      layersPattern: null,
    });
    expect(warnings).toEqual([
      'adapter_config.json: ignoring keys unknown to LORA: "eva_config", "megatron_core", "loftq_config"',
    ]);
    expectTypeOf(config.loraAlpha).toEqualTypeOf<number>();
    expectTypeOf(config.targetModules).toEqualTypeOf<string | string[] | null>();
    expectTypeOf(config.peftType).toEqualTypeOf<'LORA'>();
  });

  it('serializes byte-identically to Python json.dumps(indent=2, sort_keys=True)', () => {
    const json = loraLike.toJson(parseExample());
    expect(serializeAdapterConfig(json)).toBe(peftText);
    // Reading our own output gives the same config back.
    expect(loraLike.parse(JSON.parse(serializeAdapterConfig(json)))).toEqual(parseExample());
  });

  it('prints float fields as Python floats and int fields as ints', () => {
    const config = { ...parseExample(), loraDropout: 0.05, loraAlpha: 32 };
    const text = serializeAdapterConfig(loraLike.toJson(config));
    expect(text).toContain('\n  "lora_dropout": 0.05,\n');
    expect(text).toContain('\n  "lora_alpha": 32,\n');
    // Without the schema's knowledge (a copy of the object), 0 falls back to an int.
    expect(serializeAdapterConfig({ ...loraLike.toJson(parseExample()) })).toContain('"lora_dropout": 0,');
    expect(serializeAdapterConfig({ lora_dropout: 0 }, ['lora_dropout'])).toBe('{\n  "lora_dropout": 0.0\n}');
  });

  it('converts only top-level names: module names inside values stay as they are', () => {
    const rankPattern = { 'transformer.h.0.attn.c_attn': 4, some_module_name: 2 };
    const config = parseExample({ rank_pattern: rankPattern, alpha_pattern: { 'h.1.mlp': 8 } });
    expect(config.rankPattern).toEqual(rankPattern);
    expect(config.alphaPattern).toEqual({ 'h.1.mlp': 8 });
    const json = loraLike.toJson(config);
    expect(json.rank_pattern).toEqual(rankPattern);
    expect(serializeAdapterConfig(json)).toContain(
      '"rank_pattern": {\n    "some_module_name": 2,\n    "transformer.h.0.attn.c_attn": 4\n  },',
    );
  });

  it('rejects bad values with a message naming the field', () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ r: -1 }, 'r', 'adapter_config.json: field "r" must be a positive integer (got -1)'],
      [{ r: 1.5 }, 'r', 'adapter_config.json: field "r" must be an integer (got 1.5)'],
      [{ r: '8' }, 'r', 'adapter_config.json: field "r" must be a number (got "8")'],
      [
        { lora_dropout: 1.5 },
        'lora_dropout',
        'adapter_config.json: field "lora_dropout" must be at most 1 (got 1.5)',
      ],
      [
        { bias: 'some' },
        'bias',
        'adapter_config.json: field "bias" must be one of "none", "all", "lora_only" (got "some")',
      ],
      [
        { target_modules: 5 },
        'target_modules',
        'adapter_config.json: field "target_modules" must be a string or an array or null (got 5)',
      ],
      [
        { target_modules: ['c_attn', 3] },
        'target_modules',
        'adapter_config.json: field "target_modules"[1] must be a string (got 3)',
      ],
      [
        { rank_pattern: { 'h.0.attn': 'x' } },
        'rank_pattern',
        'adapter_config.json: field "rank_pattern"["h.0.attn"] must be a number (got "x")',
      ],
      [
        { init_lora_weights: 'pissa' },
        'init_lora_weights',
        'adapter_config.json: field "init_lora_weights" must be a boolean or "gaussian" (got "pissa")',
      ],
      [
        { task_type: 'CHAT' },
        'task_type',
        'adapter_config.json: field "task_type" must be one of "SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION" or null (got "CHAT")',
      ],
      [
        { base_model_name_or_path: 5 },
        'base_model_name_or_path',
        'adapter_config.json: field "base_model_name_or_path" must be a string or null (got 5)',
      ],
    ];
    for (const [overrides, field, message] of cases) {
      const error = errorOf(() => parseExample(overrides));
      expect(error.message).toBe(message);
      expect(error.field).toBe(field);
    }
    // Every bad field is reported, the first one in `field`.
    const both = errorOf(() => parseExample({ r: 0, use_dora: 'yes' }));
    expect(both.message.split('\n')).toEqual([
      'adapter_config.json: field "r" must be a positive integer (got 0)',
      'adapter_config.json: field "use_dora" must be a boolean (got "yes")',
    ]);
  });

  it('rejects a missing or wrong peft_type, naming expected and actual', () => {
    expect(errorOf(() => loraLike.parse({ r: 8 })).message).toBe(
      'adapter_config.json: missing "peft_type" (expected "LORA")',
    );
    const wrong = errorOf(() => parseExample({ peft_type: 'VERA' }));
    expect(wrong.message).toBe('adapter_config.json: "peft_type" is "VERA", expected "LORA"');
    expect(wrong.field).toBe('peft_type');
    expect(errorOf(() => loraLike.parse([1])).message).toMatch(/expected a JSON object/);
  });

  it('fills defaults for absent fields, and defaults() gives them all', () => {
    const config = loraLike.parse({ peft_type: 'LORA' });
    expect(config).toEqual(loraLike.defaults());
    expect(config).toMatchObject({
      r: 8,
      loraAlpha: 8,
      loraDropout: 0,
      taskType: null,
      inferenceMode: false,
      rankPattern: {},
    });
    // Each call gets its own containers.
    expect(loraLike.defaults().rankPattern).not.toBe(loraLike.defaults().rankPattern);
  });

  it('validates in toJson too, and returns every field in snake_case', () => {
    const json = loraLike.toJson({ ...loraLike.defaults(), r: 4, targetModules: ['q_proj', 'v_proj'] });
    expect(Object.keys(json).sort()).toEqual(
      ['peft_type', ...Object.keys(JSON.parse(peftText)).filter((k) => k !== 'peft_type')].sort(),
    );
    expect(json).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      target_modules: ['q_proj', 'v_proj'],
      lora_alpha: 8,
    });
    expect(errorOf(() => loraLike.toJson({ ...loraLike.defaults(), r: 0 })).message).toBe(
      'adapter config: field "r" must be a positive integer (got 0)',
    );
  });

  it('refuses field names that clash once camel-cased', () => {
    expect(() => defineAdapterConfig({ peftType: 'X', fields: { peft_type: z.string() } })).toThrow(
      /"peft_type" clashes/,
    );
    expect(() => defineAdapterConfig({ peftType: 'X', fields: { task__type: z.string() } })).toThrow(
      /clashes/,
    );
  });
});

describe('readAdapterConfig / peekPeftType', () => {
  it('reads the technique of a config text', () => {
    expect(peekPeftType(peftExample)).toBe('LORA');
    expect(readAdapterConfig(peftExample).target_modules).toEqual(['c_attn']);
  });

  it('gives clear errors for invalid JSON and a missing or non-string peft_type', () => {
    expect(errorOf(() => readAdapterConfig('{"peft_type": "LORA",')).message).toMatch(
      /^adapter_config.json is not valid JSON: /,
    );
    expect(errorOf(() => readAdapterConfig('[]')).message).toBe(
      'adapter_config.json: expected a JSON object, got []',
    );
    expect(errorOf(() => peekPeftType('{"r": 8}')).message).toBe('adapter_config.json: missing "peft_type"');
    expect(errorOf(() => peekPeftType('{"peft_type": 3}')).message).toBe(
      'adapter_config.json: "peft_type" must be a string (got 3)',
    );
  });
});
