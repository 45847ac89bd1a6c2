// Training text as transformers' run_clm example prepares it (and `peft train` does): the text is
// tokenized and cut into blocks of `seqLen` tokens (the remainder dropped); core's `blockBatches`
// draws batches of blocks in a seeded random order, a new order each epoch.
import type { Tokenizer } from '@peft/models';
import { PlaygroundError } from './errors.js';

/** Token blocks of `seqLen` tokens from the text. */
export function tokenBlocks(text: string, tokenizer: Tokenizer, seqLen: number): number[][] {
  if (text.trim() === '')
    throw new PlaygroundError('there is no training text: paste some, upload a file or pick a data set');
  const tokens = tokenizer.encode(text);
  const count = Math.floor(tokens.length / seqLen);
  if (count === 0) {
    throw new PlaygroundError(
      `the training text has ${tokens.length} tokens, fewer than one block of ${seqLen} (the sequence length): add text or shorten the sequence`,
    );
  }
  const vocab = tokenizer.vocabSize;
  const bad = tokens.find((t) => !(t >= 0 && t < vocab));
  if (bad !== undefined)
    throw new PlaygroundError(`the tokenizer produced token ${bad}, outside its vocabulary`);
  return Array.from({ length: count }, (_, i) => tokens.slice(i * seqLen, (i + 1) * seqLen));
}
