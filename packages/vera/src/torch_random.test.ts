// TorchCpuGenerator against torch itself: fixtures/torch-uniform holds torch 2.13's draws (PEFT's
// `_kaiming_init` from `torch.Generator("cpu").manual_seed(seed)`) from both of its CPU kernels.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fmaFloat32, TorchCpuGenerator, torchKaimingUniform, torchSeed32 } from './torch_random.js';

interface Draws {
  cpu_capability: string;
  cases: { seed: number; draws: { shape: [number, number]; head_bits: number[]; sha256: string }[] }[];
  raw: { seed: number; size: number; from: number; to: number; sha256: string }[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/torch-uniform/expected.json', import.meta.url), 'utf8'),
) as { fused: Draws; baseline: Draws };

const sha256 = (values: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
    .digest('hex');

describe('TorchCpuGenerator', () => {
  it('is the standard mt19937 (10000th output for seed 5489 is 4123659995)', () => {
    const generator = new TorchCpuGenerator(5489);
    let value = 0;
    for (let i = 0; i < 10_000; i++) value = generator.random();
    expect(value).toBe(4123659995);
  });

  it('rounds a fused multiply-add once, even where float64 lands exactly halfway between two float32', () => {
    // a·b + c = 1 + 3·2^-24 - 2^-70: float64 rounds it to the midpoint 1 + 3·2^-24, which would then
    // round (to even) up to 1 + 2^-22; the exact value is below the midpoint, so fmaf gives 1 + 2^-23.
    const a = 1 + 2 ** -23;
    const b = 2 ** -24 - 2 ** -47;
    expect(Math.fround(a) === a && Math.fround(b) === b).toBe(true);
    expect(Math.fround(a * b + a)).toBe(1 + 2 ** -22);
    expect(fmaFloat32(a, b, a)).toBe(1 + 2 ** -23);
    expect(fmaFloat32(-a, b, -a)).toBe(-(1 + 2 ** -23));
    expect(fmaFloat32(a, -b, 2)).toBe(Math.fround(2 - a * b));
    expect(fmaFloat32(0.5, 0.25, -0.125)).toBe(0);
  });

  it('keeps the seed mod 2^32, as torch does for any integer seed', () => {
    expect(torchSeed32(2 ** 32 + 7)).toBe(7);
    expect(torchSeed32(-3)).toBe(2 ** 32 - 3);
    expect(torchSeed32(2n ** 64n - 1n)).toBe(2 ** 32 - 1);
    expect(() => torchSeed32(2 ** 60)).toThrow(/safe integer/);
    expect(new TorchCpuGenerator(-3).random()).toBe(new TorchCpuGenerator(2 ** 32 - 3).random());
  });

  for (const [kernel, fusedMultiplyAdd] of [
    ['fused', true],
    ['baseline', false],
  ] as const) {
    it(`reproduces torch's uniform_ bit for bit (${kernel} kernel: ${fixture[kernel].cpu_capability})`, () => {
      for (const { seed, draws } of fixture[kernel].cases) {
        const generator = new TorchCpuGenerator(seed);
        for (const { shape, head_bits, sha256: expected } of draws) {
          const values = torchKaimingUniform(generator, shape[0], shape[1], { fusedMultiplyAdd });
          expect([...new Int32Array(values.buffer, 0, head_bits.length)], `seed ${seed} [${shape}]`).toEqual(
            head_bits,
          );
          expect(sha256(values), `seed ${seed} [${shape}]`).toBe(expected);
        }
      }
      for (const { seed, size, from, to, sha256: expected } of fixture[kernel].raw) {
        const values = new TorchCpuGenerator(seed).uniform(size, from, to, { fusedMultiplyAdd });
        expect(sha256(values), `seed ${seed} U(${from}, ${to})`).toBe(expected);
      }
    });
  }

  it('the two kernels differ by at most one rounding of the product (~1e-7 of the bound)', () => {
    const bound = Math.sqrt(6 / 64);
    const fused = torchKaimingUniform(new TorchCpuGenerator(9), 64, 64);
    const separate = torchKaimingUniform(new TorchCpuGenerator(9), 64, 64, { fusedMultiplyAdd: false });
    let differing = 0;
    for (let i = 0; i < fused.length; i++) {
      expect(Math.abs(fused[i]! - separate[i]!)).toBeLessThanOrEqual(2 * bound * 2 ** -24);
      if (fused[i] !== separate[i]) differing++;
    }
    expect(differing).toBeGreaterThan(0);
    expect(Math.max(...fused.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(() => new TorchCpuGenerator(0).uniform(3, 1, -1)).toThrow(/from <= to/);
  });
});
