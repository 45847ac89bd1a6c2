import { describe, expect, it } from 'vitest';
import { PRESETS, parseBenchArgs } from './bench_command.js';
import { loadTechniques, TECHNIQUE_NAMES, techniqueByName } from './techniques.js';

describe('techniques', () => {
  it('loads each technique through its package and core registry', async () => {
    const { available, missing } = await loadTechniques(TECHNIQUE_NAMES);
    expect(missing).toEqual([]);
    expect(available.map((t) => t.name)).toEqual(['full', 'lora', 'lora-fa', 'vera', 'delta-lora', 'prefix']);
  });

  it('refuses an unknown technique by name', () => {
    expect(() => techniqueByName('adalora')).toThrow(/unknown technique "adalora"/);
  });

  it('scales Delta-LoRA start step to the run', () => {
    expect(techniqueByName('delta-lora').config(120)).toMatchObject({
      update_start_steps: 12,
      delta_update_ratio: 2,
    });
  });
});

describe('command line', () => {
  it('has the default and quick presets, and the bench shape', () => {
    const options = parseBenchArgs([], '/repo');
    expect(options).toMatchObject({
      batch: 8,
      length: 128,
      steps: PRESETS.default.steps,
      quick: false,
      builtIn: true,
    });
    expect(options.out).toBe('/repo/bench-results');
    expect(options.methods).toEqual([...TECHNIQUE_NAMES]);
    expect(parseBenchArgs(['--quick'], '/repo').steps).toBe(PRESETS.quick.steps);
  });

  it('reads --methods, --steps, --backend, --model, --out, --peer and --lr', () => {
    const options = parseBenchArgs(
      [
        '--methods',
        'full,lora',
        '--steps',
        '3',
        '--backend',
        'cpu',
        '--model',
        'm',
        '--out',
        'o',
        '--peer',
        '--lr',
        'lora=1e-3',
      ],
      '/repo',
    );
    expect(options).toMatchObject({
      methods: ['full', 'lora'],
      steps: 3,
      backend: 'cpu',
      model: '/repo/m',
      builtIn: false,
      out: '/repo/o',
      peer: true,
      lr: { lora: 1e-3 },
    });
  });

  it('names what is wrong with an option', () => {
    expect(() => parseBenchArgs(['--methods', 'lora,nope'])).toThrow(/unknown technique "nope"/);
    expect(() => parseBenchArgs(['--steps', '0'])).toThrow(/--steps must be a positive integer/);
    expect(() => parseBenchArgs(['--backend', 'tpu'])).toThrow(/--backend must be one of/);
    expect(() => parseBenchArgs(['--lr', 'lora'])).toThrow(/--lr takes technique=rate/);
  });
});
