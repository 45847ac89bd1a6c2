import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from './node/index.js';
import { fixtureDir, readExpected } from './test-support/fixtures.js';
import { ByteTokenizer, loadTokenizer as loadTokenizerFiles } from './tokenizer.js';

interface TokenizerExpectation {
  vocab_size: number;
  eos_token_id: number | null;
  bos_token_id: number | null;
  cases: {
    text: string;
    ids: number[];
    ids_no_special: number[];
    decoded: string;
    decoded_skip_special: string;
  }[];
}

describe.each(['tokenizer-byte-level-bpe', 'tokenizer-metaspace-bpe'])('%s against transformers', (name) => {
  const expected = readExpected<TokenizerExpectation>(name);

  it('encodes and decodes like the reference', async () => {
    const tokenizer = await loadTokenizer(fixtureDir(name));
    expect(tokenizer.vocabSize).toBe(expected.vocab_size);
    expect(tokenizer.eosTokenId).toBe(expected.eos_token_id);
    expect(tokenizer.bosTokenId).toBe(expected.bos_token_id);
    for (const c of expected.cases) {
      expect(tokenizer.encode(c.text)).toEqual(c.ids);
      expect(tokenizer.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids_no_special);
      expect(tokenizer.decode(c.ids)).toBe(c.decoded);
      expect(tokenizer.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded_skip_special);
    }
  });

  it('loads from files in memory', async () => {
    const files = new Map(
      ['tokenizer.json', 'tokenizer_config.json'].map((f) => [
        f,
        readFileSync(join(fixtureDir(name), f), 'utf8'),
      ]),
    );
    const tokenizer = await loadTokenizerFiles(files);
    expect(tokenizer.encode(expected.cases[0]!.text)).toEqual(expected.cases[0]!.ids);
  });
});

describe('loadTokenizer errors', () => {
  it('names the missing file', async () => {
    await expect(loadTokenizerFiles(new Map([['config.json', '{}']]))).rejects.toThrow(/no tokenizer\.json/);
    await expect(loadTokenizer('/nonexistent/folder')).rejects.toThrow(/folder not found/);
  });
});

describe('ByteTokenizer', () => {
  it('maps text to UTF-8 bytes and back', () => {
    const tokenizer = new ByteTokenizer();
    const ids = tokenizer.encode('héllo 🙂');
    expect(ids).toEqual([104, 195, 169, 108, 108, 111, 32, 240, 159, 153, 130]);
    expect(tokenizer.decode(ids)).toBe('héllo 🙂');
    expect(tokenizer.vocabSize).toBe(256);
    expect(tokenizer.decode([240, 159])).toBe('\uFFFD');
    expect(() => tokenizer.decode([256])).toThrow(/not a byte/);
  });
});
