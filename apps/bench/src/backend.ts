import { type BackendName, type BackendReport, initBackend } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

export const BACKENDS: readonly BackendName[] = ['cpu', 'wasm', 'webgpu'];

/**
 * Starts the backend asked for (an error if it cannot run), or core's choice. tfjs's banner about
 * installing tfjs-node is noise in the bench's output, so PROD is set once the backend runs.
 */
export async function startBackend(backend?: BackendName): Promise<BackendReport> {
  const report = await initBackend(backend ? { backend } : {});
  tf.env().set('PROD', true);
  return report;
}
