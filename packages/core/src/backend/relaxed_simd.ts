import { relaxedSimdSupported } from '../kernels/wasm/simd/wasm_builder.js';
import { isNode } from './webgpu_adapter.js';

/** How relaxed SIMD came to be available: built into the engine, or by the V8 flag set in Node 20. */
export type RelaxedSimdSource = 'built-in' | 'v8-flag';

const V8_FLAG = '--experimental-wasm-relaxed-simd';

/** The first call's answer (a flag this module set would otherwise read as built in). */
let found: Promise<RelaxedSimdSource | null> | null = null;

/**
 * Makes WebAssembly relaxed SIMD available where the engine has it, for core's GEMM (its fused
 * multiply-add ran the bench shape's products ~1.3x faster). Chrome 114+ and Node 22+ ship it;
 * Node 20's V8 has the finished proposal behind `--experimental-wasm-relaxed-simd`, which this
 * sets (a WebAssembly feature flag: it counts for modules compiled from then on, in every thread
 * of the process). Returns where it comes from, or null where this engine has none (the GEMM then
 * multiplies and adds separately).
 */
export function enableRelaxedSimd(): Promise<RelaxedSimdSource | null> {
  found ??= enable();
  return found;
}

async function enable(): Promise<RelaxedSimdSource | null> {
  if (relaxedSimdSupported()) return 'built-in';
  if (!isNode()) return null;
  const nodeV8 = 'node:v8';
  const { setFlagsFromString } = (await import(/* @vite-ignore */ nodeV8)) as typeof import('node:v8');
  setFlagsFromString(V8_FLAG);
  return relaxedSimdSupported() ? 'v8-flag' : null;
}
