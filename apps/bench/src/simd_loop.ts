// A register-bound WebAssembly SIMD loop for ThreadCeiling (thread_ceiling.ts): ten independent
// f32x4 multiply-add chains on locals, no memory traffic. It keeps the SIMD units as busy as core's
// GEMM does without touching a cache, so that beside the scalar loop and the matmul it tells apart
// what two threads lose to the SIMD units themselves (shared power and clocks on a virtual machine's
// host) from what they lose to the memory system.
//
// Written with core's bytecode writer: `run(n: i32) -> f32` runs n iterations of `acc = acc·x + y`
// on each chain (x = y = 0.5: every lane goes from 0.5 to exactly 1 in 25 iterations and stays
// there, with no overflow or subnormal) and returns lane 0 of the chains' sum. With relaxed SIMD
// (`fused`), each step is one `f32x4.relaxed_madd`, as in core's GEMM where the engine has it;
// otherwise `f32x4.mul` then `f32x4.add`.

import { wasmBytecode } from '@peft/core';

const { buildModule, FunctionBuilder, f32, i32, relaxedSimdSupported, v128 } = wasmBytecode;

/** Independent chains: enough to cover the multiply-add's latency on two pipes. */
export const SIMD_LOOP_CHAINS = 10;
export const SIMD_LOOP_X = 0.5;
export const SIMD_LOOP_Y = 0.5;
const START = 0.5;

/** The module's bytes; `fused` takes relaxed SIMD's multiply-add. */
export function simdLoopBytes(fused: boolean): Uint8Array {
  const fn = new FunctionBuilder([i32], [f32]);
  const n = 0;
  const chains = Array.from({ length: SIMD_LOOP_CHAINS }, () => fn.local(v128));
  const x = fn.local(v128);
  const y = fn.local(v128);
  fn.f32x4Const(SIMD_LOOP_X).set(x).f32x4Const(SIMD_LOOP_Y).set(y);
  for (const c of chains) fn.f32x4Const(START).set(c);
  fn.block(() =>
    fn.loop(() => {
      fn.get(n).eqz().brIf(1);
      for (const c of chains) {
        fn.get(c).get(x);
        if (fused) fn.get(y).f32x4RelaxedMadd();
        else fn.f32x4Mul().get(y).f32x4Add();
        fn.set(c);
      }
      fn.increment(n, -1).br(0);
    }),
  );
  fn.get(chains[0]!);
  for (const c of chains.slice(1)) fn.get(c).f32x4Add();
  fn.f32x4ExtractLane(0);
  return buildModule([{ name: 'run', fn }], false);
}

/**
 * The module's bytes for this engine: fused where relaxed SIMD compiles (Node 20 once core's
 * `initBackend` has set V8's flag), as core's GEMM is built.
 */
export function simdLoopForEngine(): { bytes: Uint8Array; fused: boolean } {
  const fused = relaxedSimdSupported();
  return { bytes: simdLoopBytes(fused), fused };
}

/** `run(n)` of a module from `simdLoopBytes` (its memory import is a page nobody touches). */
export function instantiateSimdLoop(bytes: Uint8Array): (iterations: number) => number {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as BufferSource), {
    env: { memory },
  });
  return instance.exports.run as (iterations: number) => number;
}
