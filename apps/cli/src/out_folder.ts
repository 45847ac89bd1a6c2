import { readdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from './errors.js';

/**
 * --out of `merge` and `train`: a new or empty folder (a non-empty one with --overwrite), never one of
 * the input folders, so that a run cannot leave old shards beside new ones or write over its inputs.
 */
export async function checkOutFolder(
  out: string,
  inputs: readonly string[],
  overwrite: boolean,
): Promise<void> {
  if (inputs.some((input) => resolve(input) === resolve(out)))
    throw new UsageError(`--out must be a new folder, not an input folder: ${out}`);
  const info = await stat(out).catch(() => null);
  if (!info) return;
  if (!info.isDirectory()) throw new UsageError(`--out exists and is not a folder: ${out}`);
  if (!overwrite && (await readdir(out)).length > 0)
    throw new UsageError(`--out folder is not empty: ${out} (pass --overwrite to write into it)`);
}
