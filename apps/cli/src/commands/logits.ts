// `peft logits`: the logits of token ids as ONE JSON object on stdout, for scripts comparing
// implementations: {"shape":[B,T,V],"data":[...]} (row-major float32 values).
import type { BackendName } from '@peft/core';
import { startBackend } from '../backend.js';
import { checkModelFolder, loadModelFolder, padTokenId, vocabSize } from '../model_folder.js';
import { writeStdout } from '../output.js';
import { parseTokenIds, rightPad } from '../token_ids.js';

export interface LogitsOptions {
  model: string;
  adapter?: string;
  ids: string;
  backend?: BackendName;
  verbose?: boolean;
}

/** Values per write: keeps the JSON text of long outputs streaming in pieces of ~1 MB. */
const CHUNK_VALUES = 65_536;

export async function logitsCommand(options: LogitsOptions): Promise<void> {
  const folders = await checkModelFolder(options.model, options.adapter);
  const rows = parseTokenIds(options.ids, vocabSize(folders.config));
  const { ids, attentionMask, padded } = rightPad(rows, padTokenId(folders.config));
  await startBackend(options.backend, options.verbose ?? false);
  const { model } = await loadModelFolder(folders);
  const { logits } = model.forward({ inputIds: ids, ...(padded ? { attentionMask } : {}) });
  const data = (await logits.data()) as Float32Array;
  const shape = logits.shape;
  logits.dispose();
  model.dispose();

  await writeStdout(`{"shape":${JSON.stringify(shape)},`);
  if (padded) await writeStdout(`"attention_mask":${JSON.stringify(attentionMask)},`);
  await writeStdout('"data":[');
  for (let start = 0; start < data.length; start += CHUNK_VALUES) {
    const chunk = Array.from(data.subarray(start, start + CHUNK_VALUES));
    // JSON has no NaN or Infinity: they print as null, as JSON.stringify writes them.
    await writeStdout((start > 0 ? ',' : '') + JSON.stringify(chunk).slice(1, -1));
  }
  await writeStdout(']}\n');
}
