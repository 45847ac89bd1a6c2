// `peft generate`: continues a prompt, streaming each token to stdout as soon as it is chosen.
import type { BackendName } from '@peft/core';
import { type GenerateOptions, generate, type Tokenizer } from '@peft/models';
import { startBackend } from '../backend.js';
import { UsageError } from '../errors.js';
import { checkModelFolder, loadModelFolder, vocabSize } from '../model_folder.js';
import { writeStdout } from '../output.js';
import { parseTokenIds } from '../token_ids.js';
import { checkTokenRange, tokenizerFor } from '../tokenizer_option.js';

export interface GenerateCommandOptions {
  model: string;
  adapter?: string;
  prompt?: string;
  ids?: string;
  tokenizer?: string;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  ignoreEos?: boolean;
  backend?: BackendName;
  verbose?: boolean;
}

/**
 * Prints text as tokens arrive, like transformers' TextStreamer: the whole continuation is decoded
 * each time (so multi-token characters and word-initial spaces come out right) and only the new tail
 * is written; text ending in an incomplete UTF-8 sequence (U+FFFD) waits for the next token.
 */
class TextStream {
  readonly #tokens: number[] = [];
  readonly #prefixLength: number;
  #printed = 0;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly prompt: readonly number[],
  ) {
    this.#prefixLength = this.#decode([]).length;
  }

  #decode(tokens: readonly number[]): string {
    return this.tokenizer.decode([...this.prompt, ...tokens], { skipSpecialTokens: true });
  }

  async push(token: number): Promise<void> {
    this.#tokens.push(token);
    const text = this.#decode(this.#tokens).slice(this.#prefixLength);
    if (text.endsWith('\uFFFD')) return;
    await this.#write(text);
  }

  async end(): Promise<void> {
    await this.#write(this.#decode(this.#tokens).slice(this.#prefixLength));
    await writeStdout('\n');
  }

  async #write(text: string): Promise<void> {
    if (text.length <= this.#printed) return;
    await writeStdout(text.slice(this.#printed));
    this.#printed = text.length;
  }
}

export async function generateCommand(options: GenerateCommandOptions): Promise<void> {
  if ((options.prompt === undefined) === (options.ids === undefined))
    throw new UsageError('generate needs exactly one of --prompt <text> and --ids <ids>');
  const folders = await checkModelFolder(options.model, options.adapter);
  const vocab = vocabSize(folders.config);
  let prompt: number[];
  let tokenizer: Tokenizer | null = null;
  if (options.prompt !== undefined) {
    tokenizer = await tokenizerFor(options.tokenizer, options.model, vocab);
    prompt = tokenizer.encode(options.prompt);
    if (prompt.length === 0) throw new UsageError('--prompt: the prompt encodes to no tokens');
    checkTokenRange(prompt, vocab);
  } else {
    const rows = parseTokenIds(options.ids!, vocab);
    if (rows.length !== 1) throw new UsageError('generate takes one prompt: --ids without ";"');
    prompt = rows[0]!;
  }
  await startBackend(options.backend, options.verbose ?? false);
  const { model } = await loadModelFolder(folders);

  const stream = tokenizer ? new TextStream(tokenizer, prompt) : null;
  let count = 0;
  const generateOptions: GenerateOptions = {
    maxNewTokens: options.maxNewTokens,
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    ...(options.topK !== undefined ? { topK: options.topK } : {}),
    ...(options.topP !== undefined ? { topP: options.topP } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.ignoreEos ? { eosTokenId: null } : {}),
    onToken: async (token) => {
      if (stream) await stream.push(token);
      else await writeStdout(`${count > 0 ? ',' : ''}${token}`);
      count++;
    },
  };
  const started = performance.now();
  await generate(model, prompt, generateOptions);
  if (stream) await stream.end();
  else await writeStdout('\n');
  model.dispose();
  if (options.verbose) {
    const seconds = (performance.now() - started) / 1000;
    console.error(`${count} tokens in ${seconds.toFixed(2)} s (${(count / seconds).toFixed(1)} tokens/s)`);
  }
}
