// A register-bound WebAssembly SIMD loop for ThreadCeiling (thread_ceiling.ts): ten independent
// f32x4 multiply-add chains on locals, no memory traffic. It keeps the SIMD units as busy as core's
// GEMM does without touching a cache, so that beside the scalar loop and the matmul it tells apart
// what two threads lose to the SIMD units themselves (shared power and clocks on a virtual machine's
// host) from what they lose to the memory system.
//
// The module is a few dozen bytes, assembled here: `run(n: i32) -> f32` runs n iterations of
// `acc = acc·x + y` on each chain (x = y = 0.5: every lane goes from 0.5 to exactly 1 in 25
// iterations and stays there, with no overflow or subnormal) and returns lane 0 of the chains' sum. With relaxed SIMD (`fused`), each step is one
// `f32x4.relaxed_madd`, as in core's GEMM where the engine has it; otherwise `f32x4.mul` then
// `f32x4.add`.

/** Independent chains: enough to cover the multiply-add's latency on two pipes. */
export const SIMD_LOOP_CHAINS = 10;
export const SIMD_LOOP_X = 0.5;
export const SIMD_LOOP_Y = 0.5;
const START = 0.5;

const F32X4_MUL = [0xfd, 0xe6, 0x01];
const F32X4_ADD = [0xfd, 0xe4, 0x01];
const F32X4_RELAXED_MADD = [0xfd, 0x85, 0x02];

function f32x4Const(value: number): number[] {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  for (let lane = 0; lane < 4; lane++) view.setFloat32(lane * 4, value, true);
  return [0xfd, 0x0c, ...bytes];
}

function section(id: number, content: number[]): number[] {
  if (content.length > 127) throw new Error('simd_loop: a section over 127 bytes needs a longer size');
  return [id, content.length, ...content];
}

/** The module's bytes; `fused` takes relaxed SIMD's multiply-add. */
export function simdLoopBytes(fused: boolean): Uint8Array {
  // Locals: 0 is n (the parameter); 1..CHAINS the chains; then x and y.
  const x = SIMD_LOOP_CHAINS + 1;
  const y = SIMD_LOOP_CHAINS + 2;
  const chains = Array.from({ length: SIMD_LOOP_CHAINS }, (_, i) => i + 1);
  const code: number[] = [...f32x4Const(SIMD_LOOP_X), 0x21, x, ...f32x4Const(SIMD_LOOP_Y), 0x21, y];
  for (const c of chains) code.push(...f32x4Const(START), 0x21, c);
  // block; loop; if n == 0 break; ...; n -= 1; continue
  code.push(0x02, 0x40, 0x03, 0x40, 0x20, 0, 0x45, 0x0d, 1);
  for (const c of chains) {
    code.push(0x20, c, 0x20, x);
    if (fused) code.push(0x20, y, ...F32X4_RELAXED_MADD);
    else code.push(...F32X4_MUL, 0x20, y, ...F32X4_ADD);
    code.push(0x21, c);
  }
  code.push(0x20, 0, 0x41, 1, 0x6b, 0x21, 0, 0x0c, 0, 0x0b, 0x0b);
  code.push(0x20, chains[0]!);
  for (const c of chains.slice(1)) code.push(0x20, c, ...F32X4_ADD);
  code.push(0xfd, 0x1f, 0, 0x0b); // f32x4.extract_lane 0; end
  // One group of locals: CHAINS + 2 v128s.
  const body = [1, SIMD_LOOP_CHAINS + 2, 0x7b, ...code];
  const codeSection: number[] = [1, ...unsignedLeb(body.length), ...body];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 1, 0x7f, 1, 0x7d]), // type 0: (i32) -> f32
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(7, [1, 3, ...new TextEncoder().encode('run'), 0x00, 0]), // export "run"
    10,
    ...unsignedLeb(codeSection.length),
    ...codeSection,
  ]);
}

function unsignedLeb(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    bytes.push(byte);
  } while (value !== 0);
  return bytes;
}

/**
 * The module's bytes for this engine: fused where relaxed SIMD compiles (Node 20 once core's
 * `initBackend` has set V8's flag), as core's GEMM is built.
 */
export function simdLoopForEngine(): { bytes: Uint8Array; fused: boolean } {
  const fused = simdLoopBytes(true);
  if (WebAssembly.validate(fused as BufferSource)) return { bytes: fused, fused: true };
  return { bytes: simdLoopBytes(false), fused: false };
}

/** `run(n)` of a module from `simdLoopBytes` (it needs no imports). */
export function instantiateSimdLoop(bytes: Uint8Array): (iterations: number) => number {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as BufferSource));
  return instance.exports.run as (iterations: number) => number;
}
