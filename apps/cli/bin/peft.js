#!/usr/bin/env node
// The `peft` command: runs the TypeScript sources with tsx, resolving the workspace packages to their
// sources (the `peft-source` export condition), so that no build step is needed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const args = [
  '--import',
  import.meta.resolve('tsx'),
  '--conditions=peft-source',
  main,
  ...process.argv.slice(2),
];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
if (result.error) {
  process.stderr.write(`peft: cannot start node: ${result.error.message}\n`);
  process.exit(1);
}
if (result.signal) process.kill(process.pid, result.signal);
process.exit(result.status ?? 1);
