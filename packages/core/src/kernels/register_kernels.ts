import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { batchMatMulConfig } from './wasm/BatchMatMul.js';
import { cachedAttentionKernelConfigs } from './wasm/CachedAttention.js';
import { causalAttentionKernelConfigs } from './wasm/CausalAttention.js';
import { fusedKernelConfigs, registerFusedGradients } from './wasm/Fused.js';
import { gatherV2Config } from './wasm/GatherV2.js';
import { identityConfig } from './wasm/Identity.js';
import { padV2Config } from './wasm/PadV2.js';
import { sliceConfig } from './wasm/Slice.js';
import { splitVConfig } from './wasm/SplitV.js';
import { sumConfig } from './wasm/Sum.js';
import { tileConfig } from './wasm/Tile.js';
import { transposeConfig } from './wasm/Transpose.js';
import { unpackConfig } from './wasm/Unpack.js';
import { unsortedSegmentSumConfig } from './wasm/UnsortedSegmentSum.js';

/** Overrides of the wasm backend's own kernels, each built around the kernel it replaces. */
const wasmOverrides: ReadonlyArray<readonly [string, (original: KernelConfig) => KernelConfig]> = [
  ['BatchMatMul', batchMatMulConfig],
  ['GatherV2', gatherV2Config],
  ['Identity', identityConfig],
  ['PadV2', padV2Config],
  ['Slice', sliceConfig],
  ['SplitV', splitVConfig],
  ['Sum', sumConfig],
  ['Tile', tileConfig],
  ['Transpose', transposeConfig],
  ['Unpack', unpackConfig],
];

/** Kernels the wasm backend lacks. */
const wasmAdditions: readonly KernelConfig[] = [
  unsortedSegmentSumConfig,
  ...fusedKernelConfigs,
  ...causalAttentionKernelConfigs,
  ...cachedAttentionKernelConfigs,
];

const ours = new WeakSet<KernelFunc>();
/** Kernel name -> the wasm kernel that ours replaced (null: there was none). */
const replaced = new Map<string, KernelConfig | null>();

/**
 * Registers this package's kernels for the 'wasm' backend: fast paths for the kernels a transformer
 * training step hits and the kernels tfjs-wasm lacks (see kernels/README.md). Call it after
 * importing `@tensorflow/tfjs-backend-wasm` (overrides wrap the kernels it registered; without it
 * only the additions are registered), before or after `setBackend('wasm')`. Idempotent; other
 * backends are untouched. Returns the names of the kernels registered by this call.
 */
export function registerTrainingKernels(): string[] {
  registerFusedGradients();
  const registered: string[] = [];
  for (const [name, build] of wasmOverrides) {
    const current = getKernel(name, 'wasm');
    if (current === undefined || ours.has(current.kernelFunc)) continue;
    install(build(current), current);
    registered.push(name);
  }
  for (const config of wasmAdditions) {
    const current = getKernel(config.kernelName, 'wasm');
    if (current !== undefined && ours.has(current.kernelFunc)) continue;
    install(config, current ?? null);
    registered.push(config.kernelName);
  }
  return registered;
}

/** Puts back the wasm kernels that `registerTrainingKernels` replaced (for A/B benchmarks). */
export function unregisterTrainingKernels(): void {
  for (const [name, previous] of replaced) {
    const current = getKernel(name, 'wasm');
    if (current === undefined || !ours.has(current.kernelFunc)) continue;
    unregisterKernel(name, 'wasm');
    if (previous !== null) registerKernel(previous);
  }
  replaced.clear();
}

/** The wasm kernel that `registerTrainingKernels` replaced for `kernelName`, if any (for tests). */
export function replacedKernel(kernelName: string): KernelConfig | undefined {
  return replaced.get(kernelName) ?? undefined;
}

function install(config: KernelConfig, previous: KernelConfig | null): void {
  if (previous !== null) unregisterKernel(config.kernelName, 'wasm');
  registerKernel(config);
  ours.add(config.kernelFunc);
  replaced.set(config.kernelName, previous);
}
