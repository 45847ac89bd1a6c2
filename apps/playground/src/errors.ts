// Errors as a person reads them in the page: what went wrong, what kind of problem, what to try.
import type { ErrorInfo } from './protocol.js';

/** A problem with what the person gave the page (settings, text, files), worded for them. */
export class PlaygroundError extends Error {
  override readonly name = 'PlaygroundError';

  constructor(
    message: string,
    readonly kind: ErrorInfo['kind'] = 'input',
    readonly hint?: string,
  ) {
    super(message);
  }
}

const MEMORY =
  /out of memory|\boom\b|cannot enlarge memory|could not allocate|allocation failed|array buffer allocation|invalid typed array length|invalid array buffer length|device (was )?lost|GPUOutOfMemoryError|exceeds the max buffer size|maxStorageBufferBindingSize/i;

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'message' in error) return String(error.message);
  return String(error);
}

function nameOf(error: unknown): string {
  if (error instanceof Error) return error.name;
  if (typeof error === 'object' && error !== null && 'name' in error) return String(error.name);
  return '';
}

/** Classifies any thrown value for the page. */
export function describeError(error: unknown): ErrorInfo {
  const message = messageOf(error) || 'unknown error';
  const name = nameOf(error);
  const detail = error instanceof Error ? (error.stack ?? `${name}: ${message}`) : undefined;
  const info = (kind: ErrorInfo['kind'], text: string, hint?: string): ErrorInfo => ({
    message: text,
    kind,
    ...(hint ? { hint } : {}),
    ...(detail ? { detail } : {}),
  });

  if (error instanceof PlaygroundError) return info(error.kind, message, error.hint);
  if (MEMORY.test(message)) {
    return info(
      'memory',
      `Out of memory: ${message}`,
      'Use a smaller batch size or sequence length, a smaller model, or another backend (WASM has a 4 GB heap; WebGPU is limited by the GPU).',
    );
  }
  if (name === 'ModelConfigError' && /unsupported model_type/.test(message)) {
    return info(
      'unsupported',
      `Unsupported model: ${message}`,
      'The playground builds GPT-2 and LLaMA-family models (llama, mistral, qwen2, ...).',
    );
  }
  if (name === 'ModelConfigError' || name === 'ModelLoadError' || name === 'TokenizerLoadError') {
    return info(
      'file',
      `Cannot load the model: ${message}`,
      'Open a Hugging Face model folder (config.json and model.safetensors).',
    );
  }
  if (name === 'SafetensorsError' || name === 'AdapterConfigError') {
    return info('file', `Bad file: ${message}`);
  }
  if (/^cannot load the .* adapter|no registered PEFT method reads/.test(message)) {
    return info(
      'file',
      `Cannot load the adapter: ${message}`,
      'The adapter must be trained for this base model.',
    );
  }
  if (name === 'NonFiniteLossError') {
    return info('input', `Training diverged: ${message}`, 'Lower the learning rate.');
  }
  if (/^initBackend/.test(message)) return info('backend', message, 'Choose another backend.');
  return info('internal', message);
}
