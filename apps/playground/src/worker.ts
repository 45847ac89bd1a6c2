// The training worker (a module worker): owns the TensorFlow.js backend, the model and the adapter,
// so that the page stays responsive while it trains. Requests get one result or error back; pause,
// resume and stop are acted on between training steps.
import { formatBackendReport, initBackend } from '@peft/core';
import type { ModelConfigJson } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import { describeError, PlaygroundError } from './errors.js';
import type {
  Control as ControlMessage,
  ModelSourceMessage,
  RequestMessage,
  ResultOf,
  WorkerEvent,
} from './protocol.js';
import { fetchModelFiles, type ModelSource, Session, type TrainControl } from './session.js';

interface WorkerScope {
  postMessage(message: WorkerEvent, transfer?: Transferable[]): void;
  addEventListener(
    type: 'message',
    listener: (event: MessageEvent<RequestMessage | ControlMessage>) => void,
  ): void;
  addEventListener(type: 'error', listener: (event: ErrorEvent) => void): void;
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

function post(event: WorkerEvent, transfer: Transferable[] = []): void {
  scope.postMessage(event, transfer);
}

// Rebuilt when the backend starts: that is when it knows whether replicas can train beside it.
let session = new Session();
let backendReady = false;
let training = false;

class TrainingControl implements TrainControl {
  paused = false;
  stopped = false;
  #resume: (() => void) | undefined;

  whilePaused(): Promise<void> {
    return new Promise((resolve) => {
      this.#resume = resolve;
    });
  }

  set(message: ControlMessage['type']): void {
    if (message === 'pause') this.paused = true;
    if (message === 'resume') this.paused = false;
    if (message === 'stop') this.stopped = true;
    if (!this.paused || this.stopped) {
      this.#resume?.();
      this.#resume = undefined;
    }
  }
}
let control: TrainingControl | undefined;

async function readUploads(files: Record<string, Blob | Uint8Array>): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const [name, data] of Object.entries(files)) {
    out.set(name, data instanceof Uint8Array ? data : new Uint8Array(await data.arrayBuffer()));
  }
  return out;
}

async function modelSource(message: ModelSourceMessage): Promise<ModelSource> {
  switch (message.kind) {
    case 'random':
      return { kind: 'random', label: message.label, config: message.config as ModelConfigJson };
    case 'files':
      return { kind: 'files', label: message.label, files: new Map(Object.entries(message.files)) };
    case 'urls':
      return { kind: 'files', label: message.label, files: await fetchModelFiles(message.urls) };
  }
}

function needBackend(): void {
  if (!backendReady) throw new PlaygroundError('the backend is not ready yet', 'backend');
}

/** Refuses work while training runs; some work is allowed while it is paused. */
function needIdle(what: string, allowedWhilePaused = false): void {
  if (!training || (allowedWhilePaused && control?.paused)) return;
  throw new PlaygroundError(
    `cannot ${what} while training: ${allowedWhilePaused ? 'pause or stop' : 'stop'} it first`,
  );
}

interface GpuDeviceLike {
  lost?: Promise<{ reason?: string; message?: string }>;
  addEventListener?(
    type: 'uncapturederror',
    listener: (event: { error?: { constructor: { name: string }; message?: string } }) => void,
  ): void;
}

/**
 * WebGPU reports out-of-memory and validation failures as events, not exceptions, and a lost device
 * as a promise: both reach the page, and a training run stops (its numbers would be wrong).
 */
function watchGpuDevice(): void {
  const device = (tf.backend() as unknown as { device?: GpuDeviceLike }).device;
  const fail = (message: string) => {
    control?.set('stop');
    post({ type: 'error', id: null, error: describeError(new Error(message)) });
  };
  device?.lost?.then((info) => {
    if (info.reason !== 'destroyed') {
      fail(`WebGPU: the GPU device was lost (${info.reason ?? 'unknown'}): ${info.message ?? ''}`);
    }
  });
  device?.addEventListener?.('uncapturederror', (event) => {
    const error = event.error;
    fail(`WebGPU: ${error?.constructor.name ?? 'GPUError'}: ${error?.message ?? 'unknown error'}`);
  });
}

async function handle(request: RequestMessage): Promise<{ value: unknown; transfer?: Transferable[] }> {
  switch (request.type) {
    case 'init': {
      if (backendReady) throw new PlaygroundError('the backend is already started', 'backend');
      const report = await initBackend({
        ...(request.backend === 'auto' ? {} : { backend: request.backend }),
        wasmPaths: request.wasmPaths,
        ...(request.threads !== undefined ? { threads: request.threads } : {}),
      });
      tf.env().set('PROD', true); // no tfjs console advice from here on
      if (report.backend === 'webgpu') watchGpuDevice();
      session = new Session(
        report.backend === 'webgpu'
          ? {}
          : {
              replicas: {
                // Vite bundles the replica's module from this exact form.
                startWorker: () =>
                  new Worker(new URL('./replica_worker.ts', import.meta.url), { type: 'module' }),
                backend: report.backend,
                wasmPaths: request.wasmPaths,
                // Every core where WASM's kernels run on one thread (core's GEMM): one replica each.
                cores:
                  report.backend === 'wasm' && report.threads === 1
                    ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4))
                    : 1,
              },
            },
      );
      backendReady = true;
      const value: ResultOf<'init'> = { report, text: formatBackendReport(report) };
      return { value };
    }
    case 'load-model': {
      needBackend();
      needIdle('load a model');
      const value: ResultOf<'load-model'> = await session.loadModel(await modelSource(request.source));
      return { value };
    }
    case 'train': {
      needBackend();
      needIdle('start training');
      training = true;
      control = new TrainingControl();
      try {
        const value: ResultOf<'train'> = await session.train(
          request.settings,
          request.text,
          request.sample,
          control,
          {
            trainStart: (value) => post({ type: 'train-start', value }),
            step: (value) => post({ type: 'step', value }),
            state: (value) => post({ type: 'state', value }),
            sample: (phase, text, done) => post({ type: 'sample', phase, text, done }),
            warning: (message) => post({ type: 'log', message: `warning: ${message}` }),
          },
        );
        return { value };
      } finally {
        training = false;
        control = undefined;
        post({ type: 'state', value: 'idle' });
      }
    }
    case 'generate': {
      needBackend();
      needIdle('generate', true);
      const text = await session.generate(request.sample, (partial) =>
        post({ type: 'sample', phase: 'now', text: partial, done: false }),
      );
      post({ type: 'sample', phase: 'now', text, done: true });
      const value: ResultOf<'generate'> = { text };
      return { value };
    }
    case 'export-adapter': {
      needIdle('download the adapter', true);
      const value: ResultOf<'export-adapter'> = await session.exportAdapter();
      return { value, transfer: [value.bytes.buffer as ArrayBuffer] };
    }
    case 'load-adapter': {
      needBackend();
      needIdle('load an adapter');
      const value: ResultOf<'load-adapter'> = await session.loadAdapter(
        await readUploads(request.files),
        (message) => post({ type: 'log', message: `warning: ${message}` }),
      );
      return { value };
    }
  }
}

scope.addEventListener('message', (event) => {
  const message = event.data;
  if (message.type === 'pause' || message.type === 'resume' || message.type === 'stop') {
    control?.set(message.type);
    return;
  }
  handle(message).then(
    ({ value, transfer }) => post({ type: 'result', id: message.id, value }, transfer),
    (error: unknown) => {
      console.error(error);
      post({ type: 'error', id: message.id, error: describeError(error) });
    },
  );
});

// Anything thrown outside a request (a lost GPU device, a failed wasm thread) still reaches the page.
scope.addEventListener('error', (event) => {
  post({ type: 'error', id: null, error: describeError(event.error ?? event.message) });
});
scope.addEventListener('unhandledrejection', (event) => {
  post({ type: 'error', id: null, error: describeError(event.reason) });
});
