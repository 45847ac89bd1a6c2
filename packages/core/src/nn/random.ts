/**
 * Seeded randomness for initialisation and dropout. tfjs random ops take an optional seed; a single
 * process-wide generator hands out successive seeds so that a run started with `manualSeed(s)` is
 * reproducible, like `torch.manual_seed`.
 */

let state = 0x9e3779b9;

/** Reseed the process-wide generator. */
export function manualSeed(seed: number): void {
  if (!Number.isFinite(seed)) throw new Error(`manualSeed: seed must be a finite number (got ${seed})`);
  state = Math.floor(seed) >>> 0;
}

/** Next 32-bit seed from the generator (splitmix32). */
export function nextSeed(): number {
  state = (state + 0x9e3779b9) >>> 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** The generator's state, for checkpoints. */
export function getSeedState(): number {
  return state;
}

/** Restore a state returned by `getSeedState`. */
export function setSeedState(saved: number): void {
  state = saved >>> 0;
}
