// adapter_config.json, as Hugging Face PEFT reads and writes it. Each technique declares its config
// once, with PEFT's snake_case field names and defaults as zod schemas; `defineAdapterConfig` turns
// that into a converter between the JSON file and a camelCase TypeScript object.
import { z } from 'zod';
import { pythonJsonDumps } from './python_json.js';

export const TASK_TYPES = [
  'SEQ_CLS',
  'SEQ_2_SEQ_LM',
  'CAUSAL_LM',
  'TOKEN_CLS',
  'QUESTION_ANS',
  'FEATURE_EXTRACTION',
] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/** The fields of PEFT's base `PeftConfig`, part of every technique's config (besides `peft_type`). */
const COMMON_FIELDS = {
  task_type: z.enum(TASK_TYPES).nullable().default(null),
  base_model_name_or_path: z.string().nullable().default(null),
  revision: z.string().nullable().default(null),
  inference_mode: z.boolean().default(false),
  auto_mapping: z.record(z.string(), z.unknown()).nullable().default(null),
  peft_version: z.string().nullable().default(null),
};

const FILE = 'adapter_config.json';

/** A config that cannot be read or written; the message names the file's field at fault. */
export class AdapterConfigError extends Error {
  override readonly name = 'AdapterConfigError';
  constructor(
    message: string,
    /** The first snake_case field at fault, when one is. */
    readonly field?: string,
  ) {
    super(message);
  }
}

const pythonFloats = z.registry<{ pythonFloat: true }>();
/**
 * The float fields of each object returned by a schema's `toJson`: kept beside the object, not in it,
 * so that the object stays plain JSON while `serializeAdapterConfig` can still print 0 as `0.0`.
 */
const floatKeysOf = new WeakMap<object, ReadonlySet<string>>();

/**
 * A number field that PEFT declares as a Python float, so that it is written `0.0`, not `0`
 * (e.g. `lora_dropout: pythonFloat().min(0).default(0)`). Other numbers print as ints when integral.
 */
export function pythonFloat(): z.ZodNumber {
  return z.number().register(pythonFloats, { pythonFloat: true });
}

/** The schema inside `.default()`, `.optional()`, `.nullable()` and similar wrappers. */
function unwrap(schema: z.ZodType): z.ZodType {
  const innerOf = (s: z.ZodType) => (s.def as { innerType?: z.ZodType }).innerType;
  let inner = schema;
  for (let next = innerOf(inner); next !== undefined; next = innerOf(inner)) inner = next;
  return inner;
}

type SnakeToCamel<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<SnakeToCamel<Tail>>}`
  : S;

function snakeToCamel(name: string): string {
  return name
    .split('_')
    .map((part, i) => (i === 0 ? part : part.charAt(0).toUpperCase() + part.slice(1)))
    .join('');
}

export type AdapterConfigFields = Record<string, z.ZodType>;
type CommonFields = typeof COMMON_FIELDS;

/** The camelCase config object for a technique: `{ peftType, taskType, ..., r, loraAlpha, ... }`. */
export type AdapterConfigOf<P extends string, F extends AdapterConfigFields> = { peftType: P } & {
  [K in keyof (CommonFields & F) & string as SnakeToCamel<K>]: z.output<(CommonFields & F)[K]>;
};

/** adapter_config.json after JSON parsing: any object with a string `peft_type`. */
export type AdapterConfigJson = { peft_type: string } & Record<string, unknown>;

export interface ParseAdapterConfigOptions {
  /** Receives warnings, e.g. about unknown keys (default: console.warn, as PEFT warns). */
  onWarning?: (message: string) => void;
}

export interface AdapterConfigSchema<P extends string, C> {
  readonly peftType: P;
  /** snake_case fields of this technique (common fields excluded), for registries and docs. */
  readonly fields: readonly string[];
  /** Validates parsed adapter_config.json content; unknown keys are ignored with a warning. */
  parse(json: unknown, opts?: ParseAdapterConfigOptions): C;
  /**
   * Back to PEFT's snake_case JSON object, every field present; validates first. The result
   * remembers its `pythonFloat()` fields, so `serializeAdapterConfig(result)` prints them as floats.
   */
  toJson(config: C): AdapterConfigJson;
  /** A config with every field at its default. */
  defaults(): C;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function withArticle(noun: string): string {
  return /^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`;
}

/** Plain-English reading of one zod issue: "must be a positive integer", "must be one of ...". */
function describeIssue(issue: z.core.$ZodIssue, integer: boolean): string {
  const noun = integer ? 'integer' : 'number';
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${withArticle(issue.expected === 'int' ? 'integer' : issue.expected)}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${show(issue.values[0])}`
        : `must be one of ${issue.values.map(show).join(', ')}`;
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = Number(small ? issue.minimum : issue.maximum);
      if (issue.origin === 'number' || issue.origin === 'int') {
        if (small && bound === 0) return `must be a ${issue.inclusive ? 'non-negative' : 'positive'} ${noun}`;
        return `must be ${small ? (issue.inclusive ? 'at least' : 'greater than') : issue.inclusive ? 'at most' : 'less than'} ${bound}`;
      }
      const unit = issue.origin === 'string' ? 'characters' : 'items';
      return `must have ${small ? 'at least' : 'at most'} ${bound} ${unit}`;
    }
    case 'invalid_union': {
      const alternatives = issue.errors.map((branch) => (branch[0] ? describeIssue(branch[0], integer) : ''));
      if (alternatives.every((text) => text.startsWith('must be '))) {
        return `must be ${alternatives.map((text) => text.slice('must be '.length)).join(' or ')}`;
      }
      return 'does not match any allowed form';
    }
    default:
      return `is invalid (${issue.message})`;
  }
}

/** Validates one field; returns its value or a message naming it. */
function checkField(
  source: string,
  key: string,
  schema: z.ZodType,
  value: unknown,
): { ok: true; value: unknown } | { ok: false; message: string } {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  let issue: z.core.$ZodIssue = result.error.issues[0]!;
  const path = [...issue.path];
  // A union branch that failed below the top (a list with a bad item) is the one the value meant.
  while (issue.code === 'invalid_union') {
    const deeper = issue.errors
      .map((branch) => branch[0])
      .find((inner) => inner !== undefined && inner.path.length > 0);
    if (deeper === undefined) break;
    path.push(...deeper.path);
    issue = deeper;
  }
  let at = value;
  for (const step of path) at = (at as Record<PropertyKey, unknown> | undefined)?.[step as PropertyKey];
  const where = `field ${show(key)}${path.map((step) => `[${show(step)}]`).join('')}`;
  const integer = path.length === 0 && (unwrap(schema) as z.ZodNumber).isInt === true;
  let problem = describeIssue(issue, integer);
  if (path.length === 0 && problem.startsWith('must be ') && schema.safeParse(null).success) {
    problem += ' or null';
  }
  return { ok: false, message: `${source}: ${where} ${problem} (got ${show(at)})` };
}

/**
 * Declares a technique's adapter config once, with PEFT's field names and defaults:
 *
 *     const loraConfig = defineAdapterConfig({ peftType: 'LORA', fields: {
 *       r: z.number().int().positive().default(8),
 *       lora_dropout: pythonFloat().min(0).max(1).default(0),
 *       target_modules: z.union([z.string(), z.array(z.string())]).nullable().default(null),
 *     } });
 *     const config = loraConfig.parse(JSON.parse(text)); // { peftType: 'LORA', r: 8, loraDropout: 0, ... }
 *
 * Only top-level names change case; values (such as `rank_pattern`'s module names) are untouched.
 * Field schemas must keep JSON types (no transforms): `toJson` validates configs with them too.
 */
export function defineAdapterConfig<const P extends string, F extends AdapterConfigFields>(definition: {
  peftType: P;
  fields: F;
}): AdapterConfigSchema<P, AdapterConfigOf<P, F>> {
  type Config = AdapterConfigOf<P, F>;
  const { peftType } = definition;
  const schemas = new Map<string, z.ZodType>(Object.entries({ ...COMMON_FIELDS }));
  const camelNames = new Map<string, string>([['peft_type', 'peftType']]);
  for (const key of schemas.keys()) camelNames.set(key, snakeToCamel(key));
  for (const [key, schema] of Object.entries(definition.fields)) {
    const camel = snakeToCamel(key);
    if (camelNames.has(key) || [...camelNames.values()].includes(camel)) {
      throw new TypeError(`defineAdapterConfig(${peftType}): field "${key}" clashes with another field`);
    }
    camelNames.set(key, camel);
    schemas.set(key, schema);
  }
  const floatKeys = new Set(
    [...schemas].filter(([, schema]) => pythonFloats.get(unwrap(schema))?.pythonFloat).map(([key]) => key),
  );

  /** Validates snake_case values (absent ones get defaults) into a camelCase config. */
  function build(source: string, get: (key: string) => unknown): Config {
    const config: Record<string, unknown> = { peftType };
    const problems: { key: string; message: string }[] = [];
    for (const [key, schema] of schemas) {
      const result = checkField(source, key, schema, get(key));
      if (result.ok) config[camelNames.get(key)!] = result.value;
      else problems.push({ key, message: result.message });
    }
    if (problems.length > 0) {
      throw new AdapterConfigError(problems.map((p) => p.message).join('\n'), problems[0]!.key);
    }
    return config as Config;
  }

  const schema: AdapterConfigSchema<P, Config> = {
    peftType,
    fields: Object.keys(definition.fields),
    parse(json, opts = {}) {
      if (!isObject(json)) throw new AdapterConfigError(`${FILE}: expected a JSON object, got ${show(json)}`);
      if (!Object.hasOwn(json, 'peft_type')) {
        throw new AdapterConfigError(
          `${FILE}: missing "peft_type" (expected ${show(peftType)})`,
          'peft_type',
        );
      }
      if (json.peft_type !== peftType) {
        throw new AdapterConfigError(
          `${FILE}: "peft_type" is ${show(json.peft_type)}, expected ${show(peftType)}`,
          'peft_type',
        );
      }
      const unknown = Object.keys(json).filter((key) => !camelNames.has(key));
      if (unknown.length > 0) {
        const warn = opts.onWarning ?? ((message: string) => console.warn(message));
        warn(`${FILE}: ignoring keys unknown to ${peftType}: ${unknown.map(show).join(', ')}`);
      }
      return build(FILE, (key) => (Object.hasOwn(json, key) ? json[key] : undefined));
    },
    toJson(config) {
      const given = config as Record<string, unknown>;
      if (given.peftType !== peftType) {
        throw new AdapterConfigError(
          `adapter config: peftType is ${show(given.peftType)}, expected ${show(peftType)}`,
          'peft_type',
        );
      }
      const valid = build('adapter config', (key) => given[camelNames.get(key)!]) as Record<string, unknown>;
      const json: AdapterConfigJson = { peft_type: peftType };
      for (const [key, camel] of camelNames) json[key] = valid[camel];
      floatKeysOf.set(json, floatKeys);
      return json;
    },
    defaults() {
      return build('adapter config defaults', () => undefined);
    },
  };
  return schema;
}

/**
 * adapter_config.json text exactly as PEFT writes it: `json.dumps(cfg, indent=2, sort_keys=True)`,
 * no trailing newline. Integral numbers print as Python ints unless they are floats in Python: the
 * `pythonFloat()` fields of an object from a schema's `toJson`, or the top-level keys in `floatKeys`.
 */
export function serializeAdapterConfig(json: Record<string, unknown>, floatKeys?: Iterable<string>): string {
  return pythonJsonDumps(json, floatKeys ? new Set(floatKeys) : floatKeysOf.get(json));
}

/** Parses adapter_config.json text far enough to know its technique: a JSON object with a `peft_type`. */
export function readAdapterConfig(text: string): AdapterConfigJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new AdapterConfigError(`${FILE} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(json)) throw new AdapterConfigError(`${FILE}: expected a JSON object, got ${show(json)}`);
  if (!Object.hasOwn(json, 'peft_type')) {
    throw new AdapterConfigError(`${FILE}: missing "peft_type"`, 'peft_type');
  }
  if (typeof json.peft_type !== 'string') {
    throw new AdapterConfigError(
      `${FILE}: "peft_type" must be a string (got ${show(json.peft_type)})`,
      'peft_type',
    );
  }
  return json as AdapterConfigJson;
}

/** The `peft_type` of adapter_config.json text, so that a registry can pick the technique's schema. */
export function peekPeftType(text: string): string {
  return readAdapterConfig(text).peft_type;
}
