// PEFT-parity fixtures as the tests read them: the base model is the exact one the fixture was made
// on, and `peft_check.json` (written by a fixture folder's Python checker) is PEFT's verdict on
// exactly the files committed next to it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CausalLM } from '@peft/models';
import { expect } from 'vitest';
import { fileSha256, loadFixtureModel, MODEL_FIXTURES } from './model_fixtures.js';

/** The model fixture an expected.json names, after checking it is the one the fixture was made on. */
export function loadPinnedFixtureModel(expected: { base: string; base_sha256: string }): Promise<CausalLM> {
  const weights = join(MODEL_FIXTURES, expected.base, 'model.safetensors');
  expect(fileSha256(weights), `${expected.base} changed since the fixture was generated`).toBe(
    expected.base_sha256,
  );
  return loadFixtureModel(expected.base);
}

/** What a Python checker records in `peft_check.json`. */
export interface PeftCheck {
  ok: boolean;
  files_sha256: Record<string, string>;
  max_abs_diff: Record<string, number>;
}

/**
 * Expects `folder/peft_check.json` to exist, to be for exactly the files in `folder` (by sha256), to
 * say ok, and every difference PEFT measured to be below `tolerance`; `record` gets each difference.
 * Returns the record, for checks of its other fields.
 */
export function expectPeftCheck<C extends PeftCheck = PeftCheck>(
  folder: string,
  options: {
    /** How to write the record (`run fixtures/generate_fixtures.py --check-ours`). */
    howToWrite: string;
    tolerance: number;
    record(what: string, diff: number): void;
  },
): C {
  const checkFile = join(folder, 'peft_check.json');
  expect(existsSync(checkFile), options.howToWrite).toBe(true);
  const check = JSON.parse(readFileSync(checkFile, 'utf8')) as C;
  for (const [file, hash] of Object.entries(check.files_sha256)) {
    expect(fileSha256(join(folder, file)), `${file} changed after PEFT checked it`).toBe(hash);
  }
  expect(check.ok).toBe(true);
  for (const [what, diff] of Object.entries(check.max_abs_diff)) {
    options.record(what, diff);
    expect(diff, what).toBeLessThan(options.tolerance);
  }
  return check;
}
