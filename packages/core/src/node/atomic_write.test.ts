import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic_write.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('writes bytes and text, replacing an existing file, leaving no temporary file', async () => {
    const path = join(dir, 'adapter_model.safetensors');
    await writeFile(path, 'old content that is longer');
    await writeFileAtomic(path, Uint8Array.from([1, 2, 3]));
    expect([...(await readFile(path))]).toEqual([1, 2, 3]);
    await writeFileAtomic(path, 'text ✓');
    expect(await readFile(path, 'utf8')).toBe('text ✓');
    expect(await readdir(dir)).toEqual(['adapter_model.safetensors']);
  });

  it('removes the temporary file and keeps the old one when the final rename fails', async () => {
    const path = join(dir, 'target');
    await mkdir(path); // renaming a file over a directory fails
    await writeFile(join(path, 'inside'), 'keep');
    await expect(writeFileAtomic(path, 'new')).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['target']);
    expect(await readFile(join(path, 'inside'), 'utf8')).toBe('keep');
  });

  it('fails without side effects when the directory does not exist', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'file'), 'x')).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });
});
