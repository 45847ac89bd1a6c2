import { type BackendName, type BackendReport, formatBackendReport, initBackend } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Starts the TensorFlow.js backend: the one asked for (an error if it cannot run), else core's choice
 * (WebGPU on a hardware adapter, else WASM, else cpu). The report goes to stderr with --verbose.
 */
export async function startBackend(
  backend: BackendName | undefined,
  verbose: boolean,
): Promise<BackendReport> {
  const report = await initBackend(backend ? { backend } : {});
  if (verbose) console.error(formatBackendReport(report));
  // tfjs's own advice (the cpu backend's "install tfjs-node" banner) is noise in a command's output;
  // set only now, since tfjs reports why a backend failed to start through the same channel.
  else tf.env().set('PROD', true);
  return report;
}
