// A small WebAssembly binary writer: enough of the format (types, one imported memory, functions,
// exports, code) and of the instruction set (i32 arithmetic, control flow, f32 and v128 memory
// access, f32x4 arithmetic, shuffles, relaxed SIMD's multiply-add) to write SIMD kernels as TypeScript that emits their
// bytecode. The kernels are built at run time from this source: no toolchain, no binary blobs.

export const i32 = 0x7f;
export const f32 = 0x7d;
export const v128 = 0x7b;
export type ValueType = typeof i32 | typeof f32 | typeof v128;

export function unsignedLeb(value: number): number[] {
  const out: number[] = [];
  let n = value >>> 0;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function signedLeb(value: number): number[] {
  const out: number[] = [];
  let n = value | 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const name = (s: string) => [...unsignedLeb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]) => [id, ...unsignedLeb(body.length), ...body];
const vector = (items: number[][]) => [...unsignedLeb(items.length), ...items.flat()];

/** Bytes of `i8x16.shuffle` picking 32-bit lanes (0-3: first operand, 4-7: second). */
function laneBytes(lanes: readonly [number, number, number, number]): number[] {
  return lanes.flatMap((lane) => [4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3]);
}

/** A tuple of N numbers (local or parameter indices). */
export type Indices<N extends number, R extends number[] = []> = R['length'] extends N
  ? R
  : Indices<N, [number, ...R]>;

/** `[0, 1, …, n - 1]` typed as an n-tuple: parameter indices. */
export function indices<N extends number>(n: N): Indices<N> {
  return Array.from({ length: n }, (_, i) => i) as unknown as Indices<N>;
}

/**
 * One function's body, written as a stack machine: each method appends one instruction and returns
 * `this`. Locals are numbered after the parameters. Memory offsets are in bytes.
 */
export class FunctionBuilder {
  readonly #code: number[] = [];
  readonly #locals: ValueType[] = [];

  constructor(
    readonly params: readonly ValueType[],
    readonly results: readonly ValueType[] = [],
  ) {}

  /** A new local of `type`; returns its index. */
  local(type: ValueType): number {
    this.#locals.push(type);
    return this.params.length + this.#locals.length - 1;
  }

  /** `count` new locals of `type`, as a tuple of their indices. */
  locals<N extends number>(type: ValueType, count: N): Indices<N> {
    return Array.from({ length: count }, () => this.local(type)) as unknown as Indices<N>;
  }

  op(...bytes: number[]): this {
    this.#code.push(...bytes);
    return this;
  }

  get(index: number): this {
    return this.op(0x20, ...unsignedLeb(index));
  }
  set(index: number): this {
    return this.op(0x21, ...unsignedLeb(index));
  }
  tee(index: number): this {
    return this.op(0x22, ...unsignedLeb(index));
  }
  i32Const(value: number): this {
    return this.op(0x41, ...signedLeb(value));
  }
  f32Const(value: number): this {
    return this.op(0x43, ...new Uint8Array(new Float32Array([value]).buffer));
  }
  /** `local = local + delta` (i32). */
  increment(index: number, delta: number | { local: number }): this {
    this.get(index);
    if (typeof delta === 'number') this.i32Const(delta);
    else this.get(delta.local);
    return this.add().set(index);
  }

  add(): this {
    return this.op(0x6a);
  }
  sub(): this {
    return this.op(0x6b);
  }
  mul(): this {
    return this.op(0x6c);
  }
  eqz(): this {
    return this.op(0x45);
  }
  ltS(): this {
    return this.op(0x48);
  }
  ltU(): this {
    return this.op(0x49);
  }
  geS(): this {
    return this.op(0x4e);
  }
  geU(): this {
    return this.op(0x4f);
  }
  select(): this {
    return this.op(0x1b);
  }

  i32Load(offset = 0): this {
    return this.op(0x28, 2, ...unsignedLeb(offset));
  }
  f32Load(offset = 0): this {
    return this.op(0x2a, 2, ...unsignedLeb(offset));
  }
  f32Store(offset = 0): this {
    return this.op(0x38, 2, ...unsignedLeb(offset));
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Mul(): this {
    return this.op(0x94);
  }

  #simd(opcode: number, ...immediates: number[]): this {
    return this.op(0xfd, ...unsignedLeb(opcode), ...immediates);
  }
  v128Load(offset = 0): this {
    return this.#simd(0x00, 4, ...unsignedLeb(offset));
  }
  v128Store(offset = 0): this {
    return this.#simd(0x0b, 4, ...unsignedLeb(offset));
  }
  /** `v128.load32_splat`: one float from memory in every lane. */
  v128Load32Splat(offset = 0): this {
    return this.#simd(0x09, 2, ...unsignedLeb(offset));
  }
  v128Zero(): this {
    return this.#simd(0x0c, ...new Array<number>(16).fill(0));
  }
  /** Lanes of two v128 (0-3 the first, 4-7 the second) as 32-bit lanes. */
  shuffle32(lanes: readonly [number, number, number, number]): this {
    return this.#simd(0x0d, ...laneBytes(lanes));
  }
  f32x4Splat(): this {
    return this.#simd(0x13);
  }
  f32x4Add(): this {
    return this.#simd(0xe4);
  }
  /**
   * Relaxed SIMD's `f32x4.relaxed_madd`: `a·b + c` from the stack `a, b, c`, with one rounding where
   * the CPU has a fused multiply-add (V8 on x64 with FMA3, arm64), two elsewhere.
   */
  f32x4RelaxedMadd(): this {
    return this.#simd(0x105);
  }
  f32x4Sub(): this {
    return this.#simd(0xe5);
  }
  f32x4Mul(): this {
    return this.#simd(0xe6);
  }
  f32x4Div(): this {
    return this.#simd(0xe7);
  }
  f32x4Min(): this {
    return this.#simd(0xe8);
  }
  f32x4Max(): this {
    return this.#simd(0xe9);
  }
  /** `f32x4.pmin`: b < a ? b : a (x86 minps; no NaN or signed-zero fix-ups, unlike f32x4.min). */
  f32x4Pmin(): this {
    return this.#simd(0xea);
  }
  /** `f32x4.pmax`: a < b ? b : a (x86 maxps). */
  f32x4Pmax(): this {
    return this.#simd(0xeb);
  }
  f32x4Sqrt(): this {
    return this.#simd(0xe3);
  }
  /** Round to nearest, ties to even. */
  f32x4Nearest(): this {
    return this.#simd(0x6a);
  }
  f32x4ExtractLane(lane: number): this {
    return this.#simd(0x1f, lane);
  }
  /** `i32x4.trunc_sat_f32x4_s`. */
  i32x4TruncSatF32x4(): this {
    return this.#simd(0xf8);
  }
  i32x4Add(): this {
    return this.#simd(0xae);
  }
  /** `i32x4.shl` by the i32 on the stack. */
  i32x4Shl(): this {
    return this.#simd(0xab);
  }
  /** An f32x4 constant with the same value in every lane. */
  f32x4Const(value: number): this {
    const lane = [...new Uint8Array(new Float32Array([value]).buffer)];
    return this.#simd(0x0c, ...lane, ...lane, ...lane, ...lane);
  }
  /** An i32x4 constant with the same value in every lane. */
  i32x4Const(value: number): this {
    const lane = [...new Uint8Array(new Int32Array([value]).buffer)];
    return this.#simd(0x0c, ...lane, ...lane, ...lane, ...lane);
  }
  f32Sub(): this {
    return this.op(0x93);
  }
  f32Max(): this {
    return this.op(0x97);
  }
  f32Min(): this {
    return this.op(0x96);
  }
  f32Div(): this {
    return this.op(0x95);
  }
  f32Sqrt(): this {
    return this.op(0x91);
  }
  /** i32 to f32 (signed). */
  f32ConvertI32(): this {
    return this.op(0xb2);
  }

  /** `block ... end` (a `br` to it exits). */
  block(body: () => void): this {
    this.op(0x02, 0x40);
    body();
    return this.op(0x0b);
  }
  /** `loop ... end` (a `br` to it continues). */
  loop(body: () => void): this {
    this.op(0x03, 0x40);
    body();
    return this.op(0x0b);
  }
  /** `if ... else ... end` on the i32 on the stack. */
  ifElse(then: () => void, otherwise?: () => void): this {
    this.op(0x04, 0x40);
    then();
    if (otherwise) {
      this.op(0x05);
      otherwise();
    }
    return this.op(0x0b);
  }
  br(depth: number): this {
    return this.op(0x0c, ...unsignedLeb(depth));
  }
  brIf(depth: number): this {
    return this.op(0x0d, ...unsignedLeb(depth));
  }
  call(functionIndex: number): this {
    return this.op(0x10, ...unsignedLeb(functionIndex));
  }

  /**
   * `for (counter = 0; counter < limit; counter++) body()`, with `limit` a local (not re-read
   * when changed by the body). Branch depths inside `body` are relative to the loop.
   */
  forRange(counter: number, limit: number, body: () => void): this {
    this.i32Const(0).set(counter);
    return this.block(() =>
      this.loop(() => {
        this.get(counter).get(limit).geS().brIf(1);
        body();
        this.increment(counter, 1);
        this.br(0);
      }),
    );
  }

  /** The encoded body (locals and code), for the code section. */
  encode(): number[] {
    const groups = this.#locals.map((type) => [1, type]);
    const body = [...vector(groups), ...this.#code, 0x0b];
    return [...unsignedLeb(body.length), ...body];
  }
}

/**
 * A module importing `env.memory` (shared when the memory is a SharedArrayBuffer: the threaded WASM
 * build) and exporting the given functions under their names, in order (function i calls j by index).
 */
export function buildModule(
  functions: readonly { name: string; fn: FunctionBuilder }[],
  shared: boolean,
): Uint8Array {
  const types = functions.map(({ fn }) => [
    0x60,
    ...vector(fn.params.map((p) => [p])),
    ...vector(fn.results.map((r) => [r])),
  ]);
  // Limits: min 0 pages; a shared memory must declare a maximum (4 GiB covers any real one).
  const limits = shared ? [0x03, 0x00, ...unsignedLeb(65536)] : [0x00, 0x00];
  const imports = vector([[...name('env'), ...name('memory'), 0x02, ...limits]]);
  const declarations = vector(functions.map((_, i) => unsignedLeb(i)));
  const exports = vector(functions.map(({ name: n }, i) => [...name(n), 0x00, ...unsignedLeb(i)]));
  const code = vector(functions.map(({ fn }) => fn.encode()));
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(2, imports),
    ...section(3, declarations),
    ...section(7, exports),
    ...section(10, code),
  ]);
}

/**
 * Whether this engine compiles relaxed SIMD (`f32x4.relaxed_madd`): Chrome 114+, Node 22+, and
 * Node 20 with V8's `--experimental-wasm-relaxed-simd` (core's `initBackend` sets it there). Asked
 * anew on every call: a V8 flag set at run time counts from then on.
 */
export function relaxedSimdSupported(): boolean {
  const madd = new FunctionBuilder([v128, v128, v128], [v128]).get(0).get(1).get(2).f32x4RelaxedMadd();
  try {
    return WebAssembly.validate(buildModule([{ name: 'madd', fn: madd }], false) as BufferSource);
  } catch {
    return false;
  }
}
