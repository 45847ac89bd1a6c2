import type { WasmBackend } from '../wasm_backend.js';
import { FusedKernels } from './fused_kernels.js';
import { SimdGemm } from './simd_gemm.js';

/** Which matmul engine the wasm kernels use: core's SIMD GEMM (`'simd'`, the default) or XNNPACK. */
export type WasmMatmulEngine = 'simd' | 'xnnpack';

let engine: WasmMatmulEngine = 'simd';
let fusedEnabled = true;

interface SimdState {
  gemm: SimdGemm | null;
  fused: FusedKernels | null;
}
const states = new WeakMap<WasmBackend, SimdState>();

/**
 * Chooses the wasm matmul engine (for A/B benchmarks; the default is `'simd'`). XNNPACK is used
 * anyway where tfjs runs it on several threads (the browser's threaded build).
 */
export function setWasmMatmulEngine(choice: WasmMatmulEngine): void {
  engine = choice;
}

export function wasmMatmulEngine(): WasmMatmulEngine {
  return engine;
}

/** Turns the fused element-wise kernels (gelu_new, LayerNorm, softmax gradient) on or off (A/B benchmarks). */
export function setWasmFusedKernels(enabled: boolean): void {
  fusedEnabled = enabled;
}

interface EmscriptenModule {
  asm?: { memory?: WebAssembly.Memory };
  wasmMemory?: WebAssembly.Memory;
  tfjs: { getThreadsCount?: () => number };
}

function stateOf(backend: WasmBackend): SimdState {
  let state = states.get(backend);
  if (state === undefined) {
    state = { gemm: null, fused: null };
    const module = backend.wasm as unknown as EmscriptenModule;
    const memory = module.asm?.memory ?? module.wasmMemory;
    if (memory instanceof WebAssembly.Memory) {
      // Either fails where WebAssembly SIMD is missing: tfjs' own kernels then.
      try {
        state.gemm = SimdGemm.create(memory, backend.wasm);
      } catch {
        state.gemm = null;
      }
      try {
        state.fused = FusedKernels.create(memory, backend.wasm);
      } catch {
        state.fused = null;
      }
    }
    states.set(backend, state);
  }
  return state;
}

/**
 * The SIMD GEMM bound to this backend's heap, or null when the engine is XNNPACK, when tfjs runs
 * XNNPACK on more than one thread (faster than one thread of ours), or when the heap is not
 * reachable or SIMD missing.
 */
export function simdGemmFor(backend: WasmBackend): SimdGemm | null {
  if (engine !== 'simd') return null;
  const threads = (backend.wasm as unknown as EmscriptenModule).tfjs.getThreadsCount?.() ?? 1;
  if (threads > 1) return null;
  return stateOf(backend).gemm;
}

/** The fused element-wise kernels bound to this backend's heap, or null (turned off or unavailable). */
export function fusedKernelsFor(backend: WasmBackend): FusedKernels | null {
  if (!fusedEnabled) return null;
  return stateOf(backend).fused;
}
