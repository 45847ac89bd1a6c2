// Reading a Hugging Face config.json: typed fields with the transformers defaults, and errors that
// name the field at fault.

/** A config.json as a plain object; `model_type` says which architecture reads it. */
export type ModelConfigJson = { model_type: string } & Record<string, unknown>;

/** A problem with config.json: a missing or invalid field, or a feature this library does not implement. */
export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

function show(value: unknown): string {
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

/** Typed access to config.json fields; absent or null fields fall back to the given default. */
export class ConfigReader {
  constructor(
    readonly json: Record<string, unknown>,
    readonly modelType: string,
  ) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  #fail(key: string, expected: string): never {
    throw new ModelConfigError(
      `config.json (${this.modelType}): "${key}" must be ${expected} (got ${show(this.json[key])})`,
      key,
    );
  }

  int(key: string, fallback?: number): number {
    const value = this.has(key) ? this.json[key] : fallback;
    if (value === undefined) this.#fail(key, 'present');
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      this.#fail(key, 'a positive integer');
    }
    return value;
  }

  optionalInt(key: string): number | null {
    return this.has(key) ? this.int(key) : null;
  }

  number(key: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const value = this.has(key) ? this.json[key] : fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) this.#fail(key, 'a number');
    if ((range.min !== undefined && value < range.min) || (range.max !== undefined && value > range.max)) {
      this.#fail(key, `in [${range.min ?? '-inf'}, ${range.max ?? 'inf'}]`);
    }
    return value;
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.has(key) ? this.json[key] : fallback;
    if (typeof value !== 'boolean') this.#fail(key, 'true or false');
    return value;
  }

  string(key: string, fallback: string): string {
    const value = this.has(key) ? this.json[key] : fallback;
    if (typeof value !== 'string') this.#fail(key, 'a string');
    return value;
  }

  /** A token id field: an integer, a list of integers (several EOS tokens), or null. */
  tokenIds(key: string, fallback: number | null): number[] {
    const value = this.has(key) ? this.json[key] : fallback;
    if (value === null || value === undefined) return [];
    const list = Array.isArray(value) ? value : [value];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
        this.#fail(key, 'a token id or a list of them');
    }
    return list as number[];
  }

  unsupported(key: string, message: string): never {
    throw new ModelConfigError(`config.json (${this.modelType}): ${message}`, key);
  }
}

export function parseConfigJson(text: string, where = 'config.json'): ModelConfigJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelConfigError(`${where} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelConfigError(`${where}: expected a JSON object`);
  }
  const modelType = (json as Record<string, unknown>).model_type;
  if (typeof modelType !== 'string') {
    throw new ModelConfigError(
      `${where}: missing "model_type" (a string such as "gpt2" or "llama")`,
      'model_type',
    );
  }
  return json as ModelConfigJson;
}
