// Training text for `peft train`, as transformers' run_clm example prepares it: every document is
// tokenized (special tokens included), the token streams are concatenated and cut into blocks of
// --seq-len tokens (the remainder dropped); core's `blockBatches` draws batches of blocks in a seeded
// random order, a new order each epoch.
import { readFile } from 'node:fs/promises';
import type { Tokenizer } from '@peft/models';
import { UsageError } from './errors.js';

/** The documents of a data file: `.jsonl` lines with a `"text"` field, or a whole text file. */
export async function readDocuments(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  if (!path.endsWith('.jsonl')) return [text];
  return text
    .split('\n')
    .map((line, i) => ({ line: line.trim(), number: i + 1 }))
    .filter(({ line }) => line !== '')
    .map(({ line, number }) => {
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (error) {
        throw new UsageError(`${path}:${number}: not valid JSON (${(error as Error).message})`);
      }
      const value = (record as { text?: unknown } | null)?.text;
      if (typeof value !== 'string') throw new UsageError(`${path}:${number}: no "text" string field`);
      return value;
    });
}

/** Token blocks of `seqLen` tokens from the documents' concatenated token ids. */
export function tokenBlocks(documents: readonly string[], tokenizer: Tokenizer, seqLen: number): number[][] {
  const tokens = documents.flatMap((document) => tokenizer.encode(document));
  const count = Math.floor(tokens.length / seqLen);
  if (count === 0) {
    throw new UsageError(`the data has ${tokens.length} tokens, fewer than one block of --seq-len ${seqLen}`);
  }
  return Array.from({ length: count }, (_, i) => tokens.slice(i * seqLen, (i + 1) * seqLen));
}
