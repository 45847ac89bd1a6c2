#!/usr/bin/env node
// The `peft` command. Run from the repository root: `pnpm --silent peft <command> ...`.
import './console_to_stderr.js';
import { CommanderError } from 'commander';
import { errorLine } from './errors.js';
import { flushStdout } from './output.js';
import { createProgram } from './program.js';

async function main(argv: readonly string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    // --help and --version end through exitOverride too, with exit code 0.
    if (error instanceof CommanderError && error.exitCode === 0) return 0;
    const debug = argv.includes('--debug');
    process.stderr.write(`${errorLine(error)}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return error instanceof CommanderError ? 2 : 1;
  }
}

const code = await main(process.argv.slice(2));
await flushStdout();
// Exit now: a backend (Dawn for webgpu) may hold the event loop open after the command is done.
process.exit(code);
