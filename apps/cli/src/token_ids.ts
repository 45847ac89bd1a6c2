import { UsageError } from './errors.js';

/**
 * Token ids as the `--ids` option takes them: comma-separated ids, rows separated by `;`
 * (`"1,2,3;4,5"`). Every id must be an integer in [0, vocabSize).
 */
export function parseTokenIds(text: string, vocabSize: number | null): number[][] {
  const rows = text.split(';').map((row) => row.trim());
  return rows.map((row, r) => {
    if (row === '') throw new UsageError(`--ids: row ${r + 1} is empty (use "1,2,3;4,5,6")`);
    return row.split(',').map((part) => {
      const value = part.trim();
      if (!/^\d+$/.test(value))
        throw new UsageError(`--ids: "${value}" in row ${r + 1} is not a token id (use "1,2,3;4,5,6")`);
      const id = Number(value);
      if (vocabSize !== null && id >= vocabSize)
        throw new UsageError(`--ids: token id ${id} is out of range for the model's vocab_size ${vocabSize}`);
      return id;
    });
  });
}

/**
 * Rows of unequal length right-padded as a transformers tokenizer does (`padding=True`, padding side
 * "right"), with the attention mask that marks the padding. Positions stay 0, 1, 2, ... so every
 * real token's logits equal those of its row run alone.
 */
export function rightPad(
  rows: readonly (readonly number[])[],
  padId: number,
): { ids: number[][]; attentionMask: number[][]; padded: boolean } {
  const width = Math.max(...rows.map((row) => row.length));
  return {
    ids: rows.map((row) => [...row, ...new Array<number>(width - row.length).fill(padId)]),
    attentionMask: rows.map((row) => [
      ...new Array<number>(row.length).fill(1),
      ...new Array<number>(width - row.length).fill(0),
    ]),
    padded: rows.some((row) => row.length !== width),
  };
}
