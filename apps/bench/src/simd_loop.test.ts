// The SIMD loop's module: it compiles both ways, runs its recurrence exactly as float32 arithmetic
// does it (each lane of each chain `acc·x + y` from 0.5, the chains summed), and is built with
// relaxed SIMD exactly where the engine compiles it.
import { describe, expect, it } from 'vitest';
import { startBackend } from './backend.js';
import {
  instantiateSimdLoop,
  SIMD_LOOP_CHAINS,
  SIMD_LOOP_X,
  SIMD_LOOP_Y,
  simdLoopBytes,
  simdLoopForEngine,
} from './simd_loop.js';

/** What the module computes, in float32 (`fused`: one rounding per multiply-add, else two). */
function reference(iterations: number, fused: boolean): number {
  const x = Math.fround(SIMD_LOOP_X);
  const y = Math.fround(SIMD_LOOP_Y);
  let acc = Math.fround(0.5);
  for (let i = 0; i < iterations; i++) {
    acc = fused ? Math.fround(acc * x + y) : Math.fround(Math.fround(acc * x) + y);
  }
  // The chains hold the same value: their sum, added one at a time in float32.
  let sum = acc;
  for (let c = 1; c < SIMD_LOOP_CHAINS; c++) sum = Math.fround(sum + acc);
  return sum;
}

describe('simd loop', () => {
  it('runs acc·x + y on every chain with a multiply and an add', () => {
    const run = instantiateSimdLoop(simdLoopBytes(false));
    for (const n of [0, 1, 2, 3, 10, 1000]) expect(run(n)).toBe(reference(n, false));
    expect(run(0)).toBe(SIMD_LOOP_CHAINS * 0.5);
    // Every lane settles at y / (1 - x) = 1.
    expect(run(2_000_000)).toBe(SIMD_LOOP_CHAINS);
  });

  it('with relaxed SIMD, where core has set the engine up for it, each step one multiply-add', async () => {
    await startBackend('wasm');
    const engine = simdLoopForEngine();
    expect(engine.fused).toBe(WebAssembly.validate(simdLoopBytes(true) as BufferSource));
    // Node 20 has relaxed SIMD behind a flag that initBackend sets; Node 22+ has it outright.
    expect(engine.fused).toBe(true);
    const run = instantiateSimdLoop(engine.bytes);
    // x = y = 0.5: acc·x is exact, so one rounding or two give the same float32.
    for (const n of [0, 1, 2, 3, 10, 1000]) expect(run(n)).toBe(reference(n, true));
    expect(run(2_000_000)).toBe(SIMD_LOOP_CHAINS);
  });
});
