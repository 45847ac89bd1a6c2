import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointFile, CheckpointFiles } from '../checkpoint_files.js';

/** Thrown when a model or tokenizer folder does not exist. */
export class FolderNotFoundError extends Error {
  override readonly name = 'FolderNotFoundError';
}

/** The files of a local folder, read by byte range (no size limit from JavaScript buffers). */
export async function folderFiles(dir: string): Promise<CheckpointFiles> {
  const info = await stat(dir).catch(() => null);
  if (!info) throw new FolderNotFoundError(`model folder not found: ${dir}`);
  if (!info.isDirectory()) throw new FolderNotFoundError(`not a folder: ${dir}`);
  return {
    location: dir,
    list: async () =>
      (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name),
    open: async (name): Promise<CheckpointFile | undefined> => {
      const path = join(dir, name);
      const fileInfo = await stat(path).catch(() => null);
      if (!fileInfo?.isFile()) return undefined;
      return {
        size: fileInfo.size,
        read: async (begin, end) => {
          const handle = await open(path, 'r');
          try {
            const out = new Uint8Array(end - begin);
            // Node reads at most 2 GiB per call.
            for (let done = 0; done < out.byteLength; ) {
              const length = Math.min(out.byteLength - done, 2 ** 30);
              const { bytesRead } = await handle.read(out, done, length, begin + done);
              if (bytesRead === 0) throw new Error(`${path}: unexpected end of file at byte ${begin + done}`);
              done += bytesRead;
            }
            return out;
          } finally {
            await handle.close();
          }
        },
      };
    },
  };
}
