// Access to the files of a checkpoint folder, whatever holds them: a Node folder (the node entry),
// browser File objects, or bytes in memory. Files are opened by name and read by byte range, so a
// safetensors file larger than one JavaScript buffer can still be read piece by piece.

/** One file: its size and byte-range reads. */
export interface CheckpointFile {
  readonly size: number;
  /** Bytes `[begin, end)`. */
  read(begin: number, end: number): Promise<Uint8Array>;
}

/** The files of one checkpoint folder. */
export interface CheckpointFiles {
  /** Where the files are, for error messages (a folder path, or "the given files"). */
  readonly location: string;
  /** Names of the files present (base names). */
  list(): Promise<string[]>;
  /** The file, or undefined when absent. */
  open(name: string): Promise<CheckpointFile | undefined>;
}

/** File contents in memory or as a browser Blob/File. Strings are UTF-8 text (config.json). */
export type FileData = ArrayBuffer | ArrayBufferView | Blob | string;

/**
 * A checkpoint's files given directly: a map or record from file name to contents, or browser
 * `File` objects (an `<input type="file" webkitdirectory>` list), named by their base name.
 */
export type ModelFiles = ReadonlyMap<string, FileData> | Readonly<Record<string, FileData>> | Iterable<File>;

function bytesFile(bytes: Uint8Array): CheckpointFile {
  return { size: bytes.byteLength, read: async (begin, end) => bytes.subarray(begin, end) };
}

function blobFile(blob: Blob): CheckpointFile {
  return {
    size: blob.size,
    read: async (begin, end) => new Uint8Array(await blob.slice(begin, end).arrayBuffer()),
  };
}

function toFile(data: FileData): CheckpointFile {
  if (typeof data === 'string') return bytesFile(new TextEncoder().encode(data));
  if (typeof Blob !== 'undefined' && data instanceof Blob) return blobFile(data);
  if (ArrayBuffer.isView(data))
    return bytesFile(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (data instanceof ArrayBuffer) return bytesFile(new Uint8Array(data));
  throw new TypeError(
    'model files: each file must be an ArrayBuffer, a typed array, a Blob/File or a string',
  );
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** `CheckpointFiles` over files given in memory or as browser File objects. */
export function checkpointFilesFrom(files: ModelFiles): CheckpointFiles {
  const entries = new Map<string, FileData>();
  if (files instanceof Map) {
    for (const [name, data] of files) entries.set(baseName(name), data);
  } else if (Symbol.iterator in (files as object)) {
    for (const file of files as Iterable<File>) entries.set(baseName(file.name), file);
  } else {
    for (const [name, data] of Object.entries(files as Record<string, FileData>))
      entries.set(baseName(name), data);
  }
  return {
    location: 'the given files',
    list: async () => [...entries.keys()],
    open: async (name) => {
      const data = entries.get(name);
      return data === undefined ? undefined : toFile(data);
    },
  };
}

export async function readText(file: CheckpointFile): Promise<string> {
  return new TextDecoder().decode(await file.read(0, file.size));
}

function isCheckpointFiles(value: unknown): value is CheckpointFiles {
  const v = value as Partial<CheckpointFiles>;
  return typeof v.open === 'function' && typeof v.list === 'function' && typeof v.location === 'string';
}

/** `CheckpointFiles` as given, or over files given in memory. */
export function toCheckpointFiles(files: ModelFiles | CheckpointFiles): CheckpointFiles {
  return isCheckpointFiles(files) ? files : checkpointFilesFrom(files);
}
