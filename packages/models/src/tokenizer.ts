import { Tokenizer as HFTokenizerImpl } from '@huggingface/tokenizers';
import { type CheckpointFiles, type ModelFiles, readText, toCheckpointFiles } from './checkpoint_files.js';

export interface EncodeOptions {
  /** Add the tokenizer's special tokens (e.g. LLaMA's BOS); default true, as in transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS, EOS, padding) from the text; default false. */
  skipSpecialTokens?: boolean;
}

/** Text to token ids and back. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
}

/**
 * UTF-8 bytes as tokens (vocabulary 256), for models trained from scratch. Decoding replaces
 * incomplete or invalid UTF-8 with U+FFFD.
 */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 256;
  readonly bosTokenId = null;
  readonly eosTokenId = null;
  readonly padTokenId = null;

  encode(text: string): number[] {
    return Array.from(new TextEncoder().encode(text));
  }

  decode(ids: readonly number[]): string {
    const bytes = Uint8Array.from(ids, (id) => {
      if (!(Number.isInteger(id) && id >= 0 && id < 256))
        throw new Error(`ByteTokenizer: token ${id} is not a byte`);
      return id;
    });
    return new TextDecoder().decode(bytes);
  }
}

export class TokenizerLoadError extends Error {
  override readonly name = 'TokenizerLoadError';
}

/** A special token in tokenizer_config.json: a string, or an AddedToken object with `content`. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return null;
}

/** A Hugging Face `tokenizer.json` tokenizer (BPE, WordPiece, Unigram…) run by `@huggingface/tokenizers`. */
export class HuggingFaceTokenizer implements Tokenizer {
  /** The underlying `@huggingface/tokenizers` instance. */
  readonly inner: HFTokenizerImpl;
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;

  /** From the parsed tokenizer.json and tokenizer_config.json (`{}` when the folder has none). */
  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}) {
    this.inner = new HFTokenizerImpl(tokenizerJson, tokenizerConfig);
    this.vocabSize = this.inner.get_vocab(true).size;
    const id = (key: string) => {
      const content = tokenContent(tokenizerConfig[key]);
      return content === null ? null : (this.inner.token_to_id(content) ?? null);
    };
    this.bosTokenId = id('bos_token');
    this.eosTokenId = id('eos_token');
    this.padTokenId = id('pad_token');
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }
}

function parseJson(text: string, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value;
  } catch (error) {
    throw new TokenizerLoadError(`${what} is not valid JSON (${(error as Error).message})`);
  }
  throw new TokenizerLoadError(`${what}: expected a JSON object`);
}

/** The tokenizer of a Hugging Face folder: tokenizer.json, with tokenizer_config.json when present. */
export async function loadTokenizer(files: ModelFiles | CheckpointFiles): Promise<HuggingFaceTokenizer> {
  const source = toCheckpointFiles(files);
  const tokenizerFile = await source.open('tokenizer.json');
  if (!tokenizerFile) {
    throw new TokenizerLoadError(
      `${source.location}: no tokenizer.json (only fast-tokenizer files are read; use ByteTokenizer for byte-level models)`,
    );
  }
  const configFile = await source.open('tokenizer_config.json');
  const tokenizerJson = parseJson(await readText(tokenizerFile), `${source.location}: tokenizer.json`);
  const config = configFile
    ? parseJson(await readText(configFile), `${source.location}: tokenizer_config.json`)
    : {};
  return new HuggingFaceTokenizer(tokenizerJson, config);
}
