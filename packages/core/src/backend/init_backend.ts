import * as tf from '@tensorflow/tfjs-core';
import { registerTrainingKernels } from '../kernels/index.js';
import { simdGemmFor } from '../kernels/wasm/simd/simd_backend.js';
import type { WasmBackend } from '../kernels/wasm/wasm_backend.js';
import { registerAllGradients } from './register_gradients.js';
import { enableRelaxedSimd } from './relaxed_simd.js';
import { errorMessage, isNode, requestWebGPUAdapter } from './webgpu_adapter.js';

export type BackendName = 'webgpu' | 'wasm' | 'cpu';

export interface InitBackendOptions {
  /** Use exactly this backend; if it cannot be used, `initBackend` throws saying why. Default: the best available. */
  backend?: BackendName;
  /** Where the tfjs-backend-wasm `.wasm` files are served from (browser bundles); see tfjs `setWasmPaths`. */
  wasmPaths?: string | Record<string, string>;
  /** WASM threads (browser, cross-origin isolated pages only). Default: tfjs's choice. */
  threads?: number;
}

export interface BackendFallback {
  /** A backend that was tried before the chosen one. */
  backend: BackendName;
  /** Why it was not used. */
  reason: string;
}

export interface BackendReport {
  backend: BackendName;
  /** Why this backend, and how it runs (adapter, Vulkan driver, WASM binary). */
  reason: string;
  /** WASM SIMD in use (false for webgpu and cpu). */
  simd: boolean;
  /**
   * Core's WASM GEMM multiply-adds with relaxed SIMD's `f32x4.relaxed_madd` (one instruction and one
   * rounding on CPUs with FMA); false for webgpu and cpu, and where the engine has no relaxed SIMD.
   */
  relaxedSimd: boolean;
  /** CPU threads the kernels use: WASM's XNNPACK thread count, 1 for cpu, 0 for webgpu (runs on the GPU). */
  threads: number;
  /** Backends tried first, in preference order, and why each was passed over. */
  fallbacks: BackendFallback[];
}

const PREFERENCE: readonly BackendName[] = ['webgpu', 'wasm', 'cpu'];

type Attempt = { ok: true; report: Omit<BackendReport, 'fallbacks'> } | { ok: false; reason: string };

/**
 * Picks and initialises a TensorFlow.js backend for training: WebGPU when a hardware adapter exists
 * (the browser's `navigator.gpu`; in Node the `webgpu` package over a Vulkan driver), else WASM
 * (SIMD; threads where the platform allows), else the plain JS cpu backend. A forced `backend` that
 * cannot be used is an error, never a silent fallback. Also registers tfjs-core's gradients, and for
 * WASM this package's training kernels.
 *
 * In automatic mode a software WebGPU adapter (lavapipe, SwiftShader) is passed over, since WASM is
 * faster on the same CPU; ask for `{ backend: 'webgpu' }` to use one (tests do).
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  registerAllGradients();
  const candidates = options.backend ? [options.backend] : PREFERENCE;
  const fallbacks: BackendFallback[] = [];
  for (const backend of candidates) {
    const attempt = await tryBackend(backend, options, options.backend === backend);
    if (attempt.ok) return { ...attempt.report, fallbacks };
    if (options.backend) {
      throw new Error(
        `initBackend: backend '${backend}' was requested but cannot be used: ${attempt.reason}`,
      );
    }
    fallbacks.push({ backend, reason: attempt.reason });
  }
  const why = fallbacks.map((f) => `${f.backend}: ${f.reason}`).join('; ');
  throw new Error(`initBackend: no TensorFlow.js backend could be initialised (${why})`);
}

/** A few lines for logs: the chosen backend and why, then each fallback and why. */
export function formatBackendReport(report: BackendReport): string {
  const how =
    report.backend === 'wasm' ? ` (${report.simd ? 'SIMD' : 'no SIMD'}, ${plural(report.threads)})` : '';
  const lines = [`backend: ${report.backend}${how}: ${report.reason}`];
  for (const fallback of report.fallbacks) lines.push(`  not ${fallback.backend}: ${fallback.reason}`);
  return lines.join('\n');
}

function plural(threads: number): string {
  return threads === 1 ? '1 thread' : `${threads} threads`;
}

function tryBackend(backend: BackendName, options: InitBackendOptions, forced: boolean): Promise<Attempt> {
  switch (backend) {
    case 'webgpu':
      return tryWebGPU(forced);
    case 'wasm':
      return tryWasm(options);
    case 'cpu':
      return tryCpu();
  }
}

async function tryWebGPU(forced: boolean): Promise<Attempt> {
  const found = await requestWebGPUAdapter();
  if (found.adapter === null) return { ok: false, reason: found.reason };
  const via = found.vulkanDriver ? `; Vulkan driver: ${found.vulkanDriver}` : '';
  if (found.software && !forced) {
    return {
      ok: false,
      reason: `only a software adapter (${found.description}${via}), slower than WASM; pass { backend: 'webgpu' } to use it`,
    };
  }
  let webgpu: typeof import('@tensorflow/tfjs-backend-webgpu');
  try {
    // Imported only now: it registers its backend at import time, and only if navigator.gpu exists.
    webgpu = await import('@tensorflow/tfjs-backend-webgpu');
  } catch (error) {
    return {
      ok: false,
      reason: `@tensorflow/tfjs-backend-webgpu is not installed or failed to load: ${errorMessage(error)}`,
    };
  }
  if (!tf.findBackendFactory('webgpu')) {
    // It was imported before navigator.gpu existed (Node), so it skipped its registration.
    registerWebGPUBackend(webgpu.WebGPUBackend);
  }
  const failure = await setBackend('webgpu');
  if (failure) return { ok: false, reason: failure };
  const kind = found.software ? 'software adapter' : 'adapter';
  return {
    ok: true,
    report: {
      backend: 'webgpu',
      reason: `${kind}: ${found.description}${via}`,
      simd: false,
      relaxedSimd: false,
      threads: 0,
    },
  };
}

/** The same factory tfjs-backend-webgpu registers at import when navigator.gpu already exists. */
function registerWebGPUBackend(
  WebGPUBackend: typeof import('@tensorflow/tfjs-backend-webgpu').WebGPUBackend,
) {
  type Adapter = {
    limits: Record<string, number>;
    features: Set<string>;
    info?: unknown;
    requestDevice(descriptor: object): Promise<ConstructorParameters<typeof WebGPUBackend>[0]>;
  };
  const gpu = (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<Adapter | null> } } })
    .navigator.gpu;
  tf.registerBackend(
    'webgpu',
    async () => {
      const adapter = await gpu.requestAdapter();
      if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null');
      const limits = adapter.limits;
      const device = await adapter.requestDevice({
        requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
        requiredLimits: {
          maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          maxBufferSize: limits.maxBufferSize,
          maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        },
      });
      return new WebGPUBackend(device, adapter.info as ConstructorParameters<typeof WebGPUBackend>[1]);
    },
    3,
  );
}

async function tryWasm(options: InitBackendOptions): Promise<Attempt> {
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-wasm failed to load: ${errorMessage(error)}` };
  }
  // Fast paths and missing kernels (UnsortedSegmentSum, the gradient of gather) for training; they
  // wrap the kernels tfjs-backend-wasm registered at import. Idempotent.
  registerTrainingKernels();
  const alreadyInitialised = tf.engine().registry['wasm'] !== undefined;
  if (options.wasmPaths !== undefined && !alreadyInitialised) {
    wasm.setWasmPaths(options.wasmPaths as Parameters<typeof wasm.setWasmPaths>[0]);
  }
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const threadsSupported = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  if (options.threads !== undefined && threadsSupported && !alreadyInitialised)
    wasm.setThreadsCount(options.threads);

  // Before the first matmul builds core's GEMM (it uses relaxed SIMD if the engine has it then).
  const relaxed = simd ? await enableRelaxedSimd() : null;

  const failure = await setBackend('wasm');
  if (failure) return { ok: false, reason: failure };

  const threads = wasm.getThreadsCount();
  const notes = [`tfjs-backend-wasm${simd ? '-simd' : ''}${threadsSupported ? ' (threaded build)' : ''}`];
  // Core's GEMM, built now (null where XNNPACK runs the matmuls: several threads, or no SIMD).
  const gemm = simdGemmFor(tf.backend() as unknown as WasmBackend);
  const relaxedSimd = gemm?.fusedMultiplyAdd === true;
  if (gemm !== null) {
    notes.push(
      relaxedSimd
        ? `core's GEMM with relaxed SIMD's multiply-add${relaxed === 'v8-flag' ? ' (V8 flag --experimental-wasm-relaxed-simd set)' : ''}`
        : "core's GEMM without relaxed SIMD (not in this engine): a multiply and an add",
    );
  }
  if (!threadsSupported) notes.push(`single-threaded: ${whyNoWasmThreads()}`);
  if (options.threads !== undefined && options.threads !== threads) {
    notes.push(`${plural(options.threads)} requested, ${threads} in use`);
  }
  if (
    alreadyInitialised &&
    (options.wasmPaths !== undefined || (options.threads !== undefined && threadsSupported))
  ) {
    notes.push('wasmPaths/threads ignored: the WASM backend was already initialised');
  }
  return {
    ok: true,
    report: { backend: 'wasm', reason: notes.join('; '), simd, relaxedSimd, threads },
  };
}

function whyNoWasmThreads(): string {
  if (isNode()) return 'tfjs-backend-wasm never uses threads in Node (tfjs issue 3830)';
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== true) {
    return 'the page is not cross-origin isolated (serve it with COOP/COEP headers for SharedArrayBuffer)';
  }
  return 'this browser lacks WebAssembly threads';
}

async function tryCpu(): Promise<Attempt> {
  try {
    await import('@tensorflow/tfjs-backend-cpu');
  } catch (error) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-cpu failed to load: ${errorMessage(error)}` };
  }
  const failure = await setBackend('cpu');
  if (failure) return { ok: false, reason: failure };
  return {
    ok: true,
    report: {
      backend: 'cpu',
      reason: 'plain JavaScript kernels (slowest; reference backend)',
      simd: false,
      relaxedSimd: false,
      threads: 1,
    },
  };
}

/**
 * `tf.setBackend`, returning why it failed (undefined on success). tfjs only logs the cause of a failed
 * initialisation with console.warn, so the warnings are collected (and still shown) meanwhile.
 */
async function setBackend(name: BackendName): Promise<string | undefined> {
  if (!tf.findBackendFactory(name)) return `no '${name}' backend is registered with tfjs-core`;
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    warnings.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
    warn.apply(console, args);
  };
  try {
    if (await tf.setBackend(name)) {
      await tf.ready();
      return undefined;
    }
  } catch (error) {
    warnings.push(errorMessage(error));
  } finally {
    console.warn = warn;
  }
  const cause = warnings.filter((w) => !/^Initialization of backend .* failed$/.test(w)).join(' ');
  return `initialisation failed${cause ? `: ${cause.split('\n')[0]}` : ''}`;
}
