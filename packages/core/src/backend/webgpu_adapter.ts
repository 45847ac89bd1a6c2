// Finding a WebGPU adapter: the browser's `navigator.gpu`, or in Node the `webgpu` npm package (Dawn)
// over whatever Vulkan driver is installed, CPU drivers (Mesa lavapipe, SwiftShader) included.

/** The part of a WebGPU adapter this package reads (kept structural: no dependency on @webgpu/types). */
export interface WebGPUAdapterLike {
  readonly info?: {
    readonly vendor?: string;
    readonly architecture?: string;
    readonly device?: string;
    readonly description?: string;
    readonly isFallbackAdapter?: boolean;
  };
  readonly isFallbackAdapter?: boolean;
}

interface GPULike {
  requestAdapter(options?: {
    powerPreference?: 'low-power' | 'high-performance';
  }): Promise<WebGPUAdapterLike | null>;
}

/** CPU Vulkan drivers tried in Node when VK_ICD_FILENAMES is unset and the loader's own search finds no adapter. */
export const CPU_VULKAN_ICDS: readonly { name: string; path: string }[] = [
  { name: 'Mesa lavapipe', path: '/usr/share/vulkan/icd.d/lvp_icd.json' },
  { name: 'SwiftShader (Debian chromium)', path: '/usr/lib/chromium/vk_swiftshader_icd.json' },
];

export type WebGPUAdapterResult =
  | {
      readonly adapter: WebGPUAdapterLike;
      /** e.g. "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)". */
      readonly description: string;
      /** A software (CPU) implementation: lavapipe, SwiftShader, WARP. */
      readonly software: boolean;
      /** In Node: the Vulkan driver Dawn used, and how it was chosen. */
      readonly vulkanDriver?: string;
    }
  | { readonly adapter: null; readonly reason: string };

export function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

function describeAdapter(adapter: WebGPUAdapterLike): { description: string; software: boolean } {
  const info = adapter.info ?? {};
  const description =
    info.description ||
    [info.vendor, info.architecture, info.device].filter(Boolean).join(' ') ||
    'unnamed adapter';
  const software =
    info.isFallbackAdapter === true ||
    adapter.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader|microsoft basic render/i.test(description);
  return { description, software };
}

function navigatorGpu(): GPULike | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPULike } }).navigator;
  return nav?.gpu ?? undefined;
}

/** Makes `gpu` the global `navigator.gpu`, as in a browser (Node 20 has no `navigator`). */
function installNavigatorGpu(gpu: GPULike): void {
  const g = globalThis as { navigator?: object };
  g.navigator ??= {};
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

let nodeResult: Promise<WebGPUAdapterResult> | undefined;

/**
 * Requests a WebGPU adapter. In Node this installs Dawn's `navigator.gpu` and WebGPU globals
 * (GPUBufferUsage, ...) the first time, which @tensorflow/tfjs-backend-webgpu needs before it is imported.
 */
export function requestWebGPUAdapter(): Promise<WebGPUAdapterResult> {
  if (!isNode()) return requestBrowserAdapter();
  nodeResult ??= requestNodeAdapter();
  return nodeResult;
}

async function requestBrowserAdapter(): Promise<WebGPUAdapterResult> {
  const gpu = navigatorGpu();
  if (!gpu) {
    return {
      adapter: null,
      reason:
        'navigator.gpu missing (this browser has no WebGPU, it is disabled, or the page is not a secure context)',
    };
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (!adapter) return { adapter: null, reason: 'no adapter (navigator.gpu.requestAdapter() returned null)' };
  return { adapter, ...describeAdapter(adapter) };
}

async function requestNodeAdapter(): Promise<WebGPUAdapterResult> {
  // A variable specifier keeps bundlers from pulling this Node-only native package into browser builds.
  const dawnPackage = 'webgpu';
  let dawn: { create(flags: string[]): GPULike; globals: object };
  try {
    dawn = (await import(/* @vite-ignore */ dawnPackage)) as typeof dawn;
  } catch (error) {
    return {
      adapter: null,
      reason: `npm package 'webgpu' (Dawn for Node) is not installed or failed to load: ${errorMessage(error)}`,
    };
  }

  // Attempts, in order: the environment's choice, or the loader's default search (finds real GPUs and
  // any ICD installed system-wide), then each CPU driver found on disk.
  const env = process.env;
  const envName = env.VK_ICD_FILENAMES
    ? 'VK_ICD_FILENAMES'
    : env.VK_DRIVER_FILES
      ? 'VK_DRIVER_FILES'
      : undefined;
  const fromEnv = envName && env[envName];
  const attempts: { icd?: string; label: string }[] = fromEnv
    ? [{ label: `${envName}=${fromEnv} (set in the environment)` }]
    : [{ label: "the Vulkan loader's default search" }];
  if (!fromEnv) {
    const nodeFs = 'node:fs';
    const { existsSync } = (await import(/* @vite-ignore */ nodeFs)) as typeof import('node:fs');
    for (const icd of CPU_VULKAN_ICDS) {
      if (existsSync(icd.path))
        attempts.push({
          icd: icd.path,
          label: `${icd.name}, VK_ICD_FILENAMES=${icd.path} (set by initBackend)`,
        });
    }
  }

  const tried: string[] = [];
  for (const attempt of attempts) {
    if (attempt.icd) env.VK_ICD_FILENAMES = attempt.icd;
    let adapter: WebGPUAdapterLike | null = null;
    let gpu: GPULike | undefined;
    let failure = 'requestAdapter() returned null';
    try {
      gpu = dawn.create([]);
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    } catch (error) {
      failure = errorMessage(error);
    }
    if (adapter && gpu) {
      Object.assign(globalThis, dawn.globals);
      installNavigatorGpu(gpu);
      return { adapter, ...describeAdapter(adapter), vulkanDriver: attempt.label };
    }
    if (attempt.icd) delete env.VK_ICD_FILENAMES;
    tried.push(`${attempt.label}: ${failure}`);
  }
  const hint = fromEnv
    ? 'check that the file exists and is a Vulkan 1.1+ driver (Mesa lavapipe >= 25, SwiftShader)'
    : 'install a Vulkan driver: Mesa lavapipe >= 25 (bookworm-backports) or chromium for SwiftShader, ' +
      'see .ci/install-system-deps.sh; or set VK_ICD_FILENAMES';
  return {
    adapter: null,
    reason: `no adapter (Dawn found no usable Vulkan device; tried ${tried.join('; ')}; ${hint})`,
  };
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'message' in error) return String(error.message);
  return String(error);
}
