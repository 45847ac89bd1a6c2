// The --tokenizer option of `generate` and `train`: a folder with tokenizer.json, `byte` for UTF-8
// bytes, or by default the model folder's own tokenizer.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ByteTokenizer, type Tokenizer } from '@peft/models';
import { loadTokenizer } from '@peft/models/node';
import { UsageError } from './errors.js';

/** The tokenizer `option` names for the model in `modelDir` (whose config has `vocab` tokens). */
export async function tokenizerFor(
  option: string | undefined,
  modelDir: string,
  vocab: number | null,
): Promise<Tokenizer> {
  if (option === 'byte') {
    if (vocab === null || vocab > 256)
      throw new UsageError(
        `--tokenizer byte needs a model with vocab_size 256 or less (this one has ${vocab})`,
      );
    return new ByteTokenizer();
  }
  const dir = option ?? modelDir;
  if (!(await stat(dir).catch(() => null))?.isDirectory())
    throw new UsageError(`tokenizer folder not found: ${dir}`);
  if (!(await stat(join(dir, 'tokenizer.json')).catch(() => null))) {
    throw new UsageError(
      `${dir} has no tokenizer.json: pass --tokenizer <folder> (or --tokenizer byte for UTF-8 byte models)` +
        ', or give token ids with --ids where the command takes them',
    );
  }
  return loadTokenizer(dir);
}

/** The first token id of `ids` outside a `vocab`-token vocabulary, as an error. */
export function checkTokenRange(ids: readonly number[], vocab: number | null): void {
  if (vocab === null) return;
  const outside = ids.find((id) => id >= vocab);
  if (outside !== undefined)
    throw new UsageError(`the tokenizer gives token id ${outside}, outside the model's vocab_size ${vocab}`);
}
