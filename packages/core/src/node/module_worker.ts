// A worker thread running an ES module: the built `.js` as it is, or a `.ts` source (tests, `tsx`
// scripts, the bench) through tsx's loader, which Node 20 does not apply to a worker's own entry
// even when the parent was started with `--import tsx`.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface ModuleWorkerOptions {
  /** Passed to the worker as `workerData` (structured-cloneable). */
  workerData?: unknown;
  /**
   * Node options for the worker (`execArgv`). Default: the parent's. A `.ts` entry also gets the
   * `peft-source` export condition, unless the options already name conditions.
   */
  execArgv?: string[];
}

/** A module's `file:` URL as a string, from a URL, a `file:` URL string or a path. */
export function moduleHref(entry: URL | string): string {
  return entry instanceof URL ? entry.href : entry.startsWith('file:') ? entry : pathToFileURL(entry).href;
}

/**
 * The module `name` beside `base` (the caller's `import.meta.url`), with base's extension: `.ts`
 * when the caller runs from its source, `.js` when built. For a worker entry next to its caller.
 */
export function siblingModule(base: string | URL, name: string): URL {
  const from = base instanceof URL ? base.href : base;
  return new URL(`./${name}.${from.endsWith('.ts') ? 'ts' : 'js'}`, from);
}

/**
 * Starts a worker thread on the ES module at `entry` (a `file:` URL, or a path). A `.ts` entry is
 * imported after registering tsx's loader (resolved from `@peft/core`'s own dependencies), with the
 * `peft-source` condition so that workspace packages resolve to their sources too.
 */
export function moduleWorker(entry: URL | string, options: ModuleWorkerOptions = {}): Worker {
  const url = moduleHref(entry);
  const flags = options.execArgv ?? [...process.execArgv];
  const init = { eval: true, workerData: options.workerData };
  if (!url.endsWith('.ts')) return new Worker(`import(${JSON.stringify(url)})`, { ...init, execArgv: flags });
  const require = createRequire(import.meta.url);
  const tsxApi = pathToFileURL(
    join(dirname(require.resolve('tsx/package.json')), 'dist/esm/api/index.mjs'),
  ).href;
  const conditions = flags.some((arg) => arg.startsWith('--conditions')) ? [] : ['--conditions=peft-source'];
  return new Worker(
    `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); })`,
    { ...init, execArgv: [...flags, ...conditions] },
  );
}
