// PyTorch's CPU random generator, bit for bit: `torch.Generator("cpu").manual_seed(seed)` followed by
// `tensor.uniform_(from, to, generator=g)` on float32 tensors. VeRA needs it because PEFT draws the
// shared projections this way from `projection_prng_key`, and an adapter saved with
// `save_projection=False` holds no projections: they can only be rebuilt by drawing them again.
//
// What torch does (ATen, checked against torch 2.13 by fixtures/generate_fixtures.py):
// - `CPUGeneratorImpl` is a standard 32-bit Mersenne Twister (mt19937) seeded with `seed & 0xffffffff`;
// - float32 `uniform_` takes one 32-bit output per element, in row-major order
//   (`uniform_real_distribution<float>` calls `random()`, not `random64()`), keeps its low 24 bits,
//   `x = (v & 0xffffff) * 2^-24`, and returns `x * (to - from) + from` in float32
//   (`transformation::uniform_real`), with `from` and `to` first rounded to float32.
// - That last expression is compiled into a fused multiply-add in the AVX2 and AVX-512 builds of the
//   kernel (x86 CPUs from the last decade), rounding once; the baseline build (`ATEN_CPU_CAPABILITY=default`,
//   CPUs without AVX2) rounds the product and the sum separately. Both are implemented; the two differ
//   in about half the elements, by up to 2^-24 of the range, which is why PEFT warns that regenerating
//   the projections "may not be accurate on all system configurations".

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const TWO_POW_32 = 2 ** 32;

/** A 32-bit seed as torch derives it from any integer seed (`seed mod 2^32`, negatives wrapped). */
export function torchSeed32(seed: number | bigint): number {
  if (typeof seed === 'bigint') return Number(BigInt.asUintN(32, seed));
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`torch seed must be a safe integer (got ${seed}); pass a bigint for larger seeds`);
  }
  return ((seed % TWO_POW_32) + TWO_POW_32) % TWO_POW_32;
}

/** `fl32(a·b + c)` rounded once, as a float32 fused multiply-add (`a`, `b` float32 values). */
export function fmaFloat32(a: number, b: number, c: number): number {
  // a and b are float32 values: their product is exact in float64 (48 significant bits at most).
  const product = a * b;
  const sum = product + c;
  // The exact sum is sum + error (TwoSum). Rounding `sum` to float32 can differ from rounding the
  // exact value only when `sum` lies exactly halfway between two float32 values.
  const bigger = Math.abs(product) >= Math.abs(c) ? product : c;
  const error = bigger === product ? c - (sum - product) : product - (sum - c);
  const rounded = Math.fround(sum);
  if (error === 0 || rounded === sum) return rounded;
  const other = rounded > sum ? nextFloat32Down(rounded) : nextFloat32Up(rounded);
  if (Math.abs(sum - rounded) !== Math.abs(sum - other)) return rounded; // not a tie
  // A tie in float64 is not one for the exact value: go to the side the error points to.
  return error > 0 === other > rounded ? other : rounded;
}

const scratch = new Float32Array(1);
const scratchBits = new Int32Array(scratch.buffer);

function nextFloat32Up(x: number): number {
  scratch[0] = x;
  if (x === 0) return 2 ** -149;
  scratchBits[0]! += x > 0 ? 1 : -1;
  return scratch[0]!;
}

function nextFloat32Down(x: number): number {
  return -nextFloat32Up(-x);
}

export interface TorchUniformOptions {
  /**
   * Round `x·(to−from) + from` once, as torch's AVX2 / AVX-512 kernels do (default true), or twice,
   * as its baseline kernel does on CPUs without AVX2 (`ATEN_CPU_CAPABILITY=default`).
   */
  fusedMultiplyAdd?: boolean;
}

/** `torch.Generator("cpu")`: mt19937 seeded like `manual_seed`. */
export class TorchCpuGenerator {
  readonly #state = new Uint32Array(N);
  #index = N;

  constructor(seed: number | bigint = 67280421310721) {
    this.manualSeed(seed);
  }

  /** `generator.manual_seed(seed)`. */
  manualSeed(seed: number | bigint): this {
    const state = this.#state;
    state[0] = torchSeed32(seed);
    for (let i = 1; i < N; i++) {
      const previous = state[i - 1]!;
      state[i] = (Math.imul(1812433253, previous ^ (previous >>> 30)) + i) >>> 0;
    }
    this.#index = N;
    return this;
  }

  #twist(): void {
    const state = this.#state;
    for (let i = 0; i < N; i++) {
      const y = (state[i]! & UPPER_MASK) | (state[(i + 1) % N]! & LOWER_MASK);
      state[i] = state[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.#index = 0;
  }

  /** The next 32-bit output (`CPUGeneratorImpl::random()`). */
  random(): number {
    if (this.#index >= N) this.#twist();
    let y = this.#state[this.#index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `torch.empty(size, dtype=torch.float32).uniform_(from, to, generator=self)`, flattened row-major. */
  uniform(size: number, from: number, to: number, options: TorchUniformOptions = {}): Float32Array {
    if (!(from <= to)) throw new Error(`uniform: expected from <= to (got ${from}, ${to})`);
    const fused = options.fusedMultiplyAdd ?? true;
    const low = Math.fround(from);
    const range = Math.fround(Math.fround(to) - low);
    const out = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const x = (this.random() & 0xffffff) * 2 ** -24;
      out[i] = fused ? fmaFloat32(x, range, low) : Math.fround(Math.fround(x * range) + low);
    }
    return out;
  }
}

/**
 * PEFT's `_kaiming_init` (tuners/vera/model.py) for a `[rows, cols]` tensor: kaiming-uniform with
 * gain sqrt(2) (a = 0) and fan-in `cols`, i.e. `U(±sqrt(6 / cols))`, drawn from `generator`.
 */
export function torchKaimingUniform(
  generator: TorchCpuGenerator,
  rows: number,
  cols: number,
  options: TorchUniformOptions = {},
): Float32Array {
  // The same float64 operations as Python's `math.sqrt(3.0) * (math.sqrt(2) / math.sqrt(fan))`.
  const std = Math.sqrt(2) / Math.sqrt(cols);
  const bound = Math.sqrt(3.0) * std;
  return generator.uniform(rows * cols, -bound, bound, options);
}
