import { CommanderError } from 'commander';

/** A problem with what the user asked for (bad option value, missing file): reported without a stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

// Errors that carry a message meant for the user; anything else is reported as an internal error.
const USER_ERROR_NAMES = new Set([
  'UsageError',
  'ModelLoadError',
  'ModelConfigError',
  'TokenizerLoadError',
  'FolderNotFoundError',
  'SafetensorsError',
  'AdapterConfigError',
  'NonFiniteLossError',
]);

function isUserError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (USER_ERROR_NAMES.has(error.name)) return true;
  // File-system errors (ENOENT, EACCES, EISDIR...) name the path; plain Errors from the libraries are
  // their validation messages (unknown peft_type, merge refused, shape mismatch).
  return typeof (error as NodeJS.ErrnoException).code === 'string' || error.constructor === Error;
}

/** The one line printed on stderr for a failed command. */
export function errorLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message
    .replace(/^error: /, '')
    .split('\n')
    .map((part) => part.trim())
    .filter(Boolean)
    .join(' ');
  if (error instanceof CommanderError || isUserError(error)) return `peft: ${line}`;
  const name = error instanceof Error ? error.name : 'error';
  return `peft: internal error (${name}): ${line} (run with --debug for the stack trace)`;
}
