// PEFT's LoRA-FA optimizer (tests/test_lorafa.py, mirrored): the projected first moment per layer
// scaling, the update, weight decay, A untouched; plus the pseudo-inverse it rests on.
import '@tensorflow/tfjs-backend-cpu';
import { AdamW, type Parameter, type PeftModel } from '@peft/core';
import { type LoraConfigInput, LoraLayer } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { adapted, gradientsByName, tokens } from './models.test-support.js';
import { createOptimizer, LoraFaOptimizer } from './optimizer.js';
import { symmetricPseudoInverse } from './pseudo_inverse.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Gauss-Jordan inverse in float64: an independent check of the projection. */
function inverse(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[pivot]![c]!)) pivot = r;
    [a[c], a[pivot]] = [a[pivot]!, a[c]!];
    const p = a[c]![c]!;
    a[c] = a[c]!.map((v) => v / p);
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]!;
      a[r] = a[r]!.map((v, j) => v - f * a[c]![j]!);
    }
  }
  return a.map((row) => row.slice(n));
}

function matrix(t: tf.Tensor): number[][] {
  return t.arraySync() as number[][];
}

function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    norm = Math.max(norm, Math.abs(expected[i]!));
  }
  return diff / norm;
}

describe('symmetricPseudoInverse', () => {
  it('inverts a well-conditioned symmetric matrix', () => {
    const m = [
      [4, 1, 0.5],
      [1, 3, -0.2],
      [0.5, -0.2, 2],
    ];
    const pinv = symmetricPseudoInverse(m.flat(), 3);
    expect(relativeError(pinv, inverse(m).flat())).toBeLessThan(1e-14);
  });

  it("matches torch.linalg.pinv of PEFT's A·Aᵀ + 1e-8·I when A has fewer columns than rows (rank-deficient)", () => {
    // A = [[1, 2], [3, 4], [5, 6]]: A·Aᵀ has rank 2; torch (float32) cuts the 1e-8 eigenvalue as we do.
    const a = [
      [1, 2],
      [3, 4],
      [5, 6],
    ];
    const m = a.map((x, i) => a.map((y, j) => x[0]! * y[0]! + x[1]! * y[1]! + (i === j ? 1e-8 : 0)));
    const torch = [
      [2.951390504837036, 0.8055504560470581, -1.3402749300003052],
      [0.805556058883667, 0.22222085297107697, -0.3611103594303131],
      [-1.3402786254882812, -0.36110880970954895, 0.6180542707443237],
    ];
    expect(relativeError(symmetricPseudoInverse(m.flat(), 3), torch.flat())).toBeLessThan(1e-5);
  });
});

const CONFIG: LoraConfigInput = {
  r: 4,
  loraAlpha: 8,
  targetModules: ['c_attn', 'c_fc'],
  // Different scalings per layer: s = 8/4, 3/4 (alpha_pattern), 8/2 (rank_pattern)
  rankPattern: { 'h.1.mlp.c_fc': 2 },
  alphaPattern: { 'h.0.attn.c_attn': 3 },
  initLoraWeights: false, // B ≠ 0, so that weight decay shows
};

/** Every LoRA layer of the model with its A, B and scaling. */
function pairs(peft: PeftModel<CausalLM>) {
  const names = new Map<Parameter, string>([...peft.namedParameters()].map(([n, p]) => [p, n]));
  return peft
    .adapterLayers()
    .filter((entry): entry is [string, LoraLayer] => entry[1] instanceof LoraLayer)
    .map(([layer, l]) => {
      const a = l.loraA.get('default')!.weight;
      const b = l.loraB.get('default')!.weight;
      return { layer, a, b, bName: names.get(b)!, scaling: l.scaling('default'), r: l.rank('default') };
    });
}

describe('LoraFaOptimizer', () => {
  it("uses each layer's own scaling (α/r, alpha_pattern, rank_pattern, rsLoRA)", async () => {
    const { peft } = adapted('lora-fa', CONFIG);
    const optimizer = await LoraFaOptimizer.create(peft);
    expect(optimizer.pairs().map((p) => [p.layer, p.scaling])).toEqual([
      ['transformer.h.0.attn.c_attn', 3 / 4],
      ['transformer.h.0.mlp.c_fc', 8 / 4],
      ['transformer.h.1.attn.c_attn', 8 / 4],
      ['transformer.h.1.mlp.c_fc', 8 / 2],
    ]);
    const rs = await LoraFaOptimizer.create(adapted('lora-fa', { ...CONFIG, useRslora: true }).peft);
    expect(rs.pairs().map((p) => p.scaling)).toEqual([3 / 2, 8 / 2, 8 / 2, 8 / Math.SQRT2]);
    optimizer.dispose();
    rs.dispose();
  });

  it('first moment = (1−β1)·(1/s²)·G·(A·Aᵀ + 1e-8·I)⁻¹ per layer, computed by hand; B takes the folded-bias-correction step', async () => {
    const { peft } = adapted('lora-fa', CONFIG);
    const lr = 0.01;
    const optimizer = await LoraFaOptimizer.create(peft, { lr });
    const ids = tokens();
    const grads = gradientsByName(peft, ids);
    const before = new Map(pairs(peft).map((p) => [p.bName, p.b.value.dataSync().slice()]));
    const gradMap = new Map(pairs(peft).map((p) => [p.b, tf.tensor(grads.get(p.bName)!, p.b.shape)]));
    optimizer.step(gradMap);
    const state = optimizer.getState();
    for (const { layer, a, b, bName, scaling, r } of pairs(peft)) {
      const av = matrix(a.value);
      const m = av.map((x, i) =>
        av.map((y, j) => x.reduce((s, v, k) => s + v * y[k]!, 0) + (i === j ? 1e-8 : 0)),
      );
      const inv = inverse(m);
      const g = matrix(gradMap.get(b)!);
      // g̃ = (1/s²) G·M⁻¹, [out, r]
      const projected = g.map((row) =>
        inv[0]!.map((_, j) => row.reduce((s, v, k) => s + v * inv[k]![j]!, 0) / scaling ** 2),
      );
      const prefix = `base_model.model.${layer}.lora`;
      expect(bName.startsWith(prefix)).toBe(true);
      const expAvg = state.tensors.get(`${prefix}.exp_avg_B`)!;
      expect(expAvg.shape).toEqual([b.shape[0], r]);
      expect(
        relativeError(
          expAvg.dataSync(),
          projected.flat().map((v) => 0.1 * v),
        ),
        layer,
      ).toBeLessThan(1e-5);
      const expAvgSq = state.tensors.get(`${prefix}.exp_avg_sq_B`)!;
      expect(
        relativeError(
          expAvgSq.dataSync(),
          projected.flat().map((v) => 0.001 * v * v),
        ),
        layer,
      ).toBeLessThan(1e-5);
      expect(state.scalars[`${prefix}.step`]).toBe(1);
      // B ← B − lr·√(1−β2)/(1−β1) · m / (√v + 1e-6)
      const step = (lr * Math.sqrt(1 - 0.999)) / (1 - 0.9);
      const want = before.get(bName)!.map((v, i) => {
        const mi = 0.1 * projected.flat()[i]!;
        const vi = 0.001 * projected.flat()[i]! ** 2;
        return v - (step * mi) / (Math.sqrt(vi) + 1e-6);
      });
      expect(maxAbsDiff(b.value, want), layer).toBeLessThan(1e-6);
    }
    expect(state.scalars.step_count).toBe(1);
    tf.dispose([...gradMap.values()]);
    optimizer.dispose();
  });

  it('weight decay scales B by (1 − lr·wd) after the Adam step', async () => {
    // One step from the same B and gradient: decayed = undecayed · (1 − lr·wd).
    const { peft: p1 } = adapted('lora-fa', CONFIG);
    const o1 = await LoraFaOptimizer.create(p1, { lr: 0.05, weightDecay: 0.1 });
    const { peft: p2 } = adapted('lora-fa', CONFIG);
    const o2 = await LoraFaOptimizer.create(p2, { lr: 0.05 });
    const grads = gradientsByName(p1, tokens());
    for (const [peft, optimizer] of [
      [p1, o1],
      [p2, o2],
    ] as const) {
      const gradMap = new Map(pairs(peft).map((p) => [p.b, tf.tensor(grads.get(p.bName)!, p.b.shape)]));
      optimizer.step(gradMap);
      tf.dispose([...gradMap.values()]);
    }
    pairs(p1).forEach((p, i) => {
      const undecayed = pairs(p2)[i]!.b.value;
      expect(maxAbsDiff(p.b.value, tf.mul(undecayed, 1 - 0.05 * 0.1))).toBeLessThan(1e-7);
    });
    o1.dispose();
    o2.dispose();
  });

  it('trains other parameters (modules_to_save) with the same AdamW, unprojected, under PEFT-style names', async () => {
    const { peft } = adapted('lora-fa', { ...CONFIG, modulesToSave: ['ln_f'] });
    const optimizer = await LoraFaOptimizer.create(peft);
    const grads = gradientsByName(peft, tokens());
    const name = 'base_model.model.transformer.ln_f.modules_to_save.default.weight';
    expect(grads.has(name)).toBe(true);
    const parameter = [...peft.namedParameters()].find(([n]) => n === name)![1];
    const gradMap = new Map([[parameter, tf.tensor(grads.get(name)!, parameter.shape)]]);
    optimizer.step(gradMap);
    const expAvg = optimizer.getState().tensors.get(`${name}.exp_avg`)!;
    expect(maxAbsDiff(expAvg, tf.mul(gradMap.get(parameter)!, 0.1))).toBeLessThan(1e-9);
    expect(optimizer.parameters()).toHaveLength(4 + 2); // four B, ln_f's weight and bias
    tf.dispose([...gradMap.values()]);
    optimizer.dispose();
  });

  it('freezes lora_A of a plain LoRA model, as create_lorafa_optimizer does', async () => {
    const { peft } = adapted('lora', CONFIG);
    expect(pairs(peft).every((p) => p.a.requiresGrad)).toBe(true);
    const optimizer = await LoraFaOptimizer.create(peft);
    expect(pairs(peft).every((p) => !p.a.requiresGrad && p.b.requiresGrad)).toBe(true);
    optimizer.dispose();
  });

  it('saves and restores its state, refusing a mismatched one without changing anything', async () => {
    const { peft } = adapted('lora-fa', CONFIG);
    const optimizer = await LoraFaOptimizer.create(peft);
    const grads = gradientsByName(peft, tokens());
    const gradMap = new Map(pairs(peft).map((p) => [p.b, tf.tensor(grads.get(p.bName)!, p.b.shape)]));
    optimizer.step(gradMap);
    const saved = optimizer.getState();
    const copy = {
      tensors: new Map([...saved.tensors].map(([k, t]) => [k, t.clone()])),
      scalars: { ...saved.scalars },
    };
    optimizer.step(gradMap);
    expect(optimizer.stepCount).toBe(2);
    const broken = { tensors: new Map(copy.tensors), scalars: { ...copy.scalars } };
    broken.tensors.delete([...broken.tensors.keys()][0]!);
    expect(() => optimizer.setState(broken)).toThrow(/missing tensor/);
    expect(optimizer.stepCount).toBe(2);
    optimizer.setState(copy);
    expect(optimizer.stepCount).toBe(1);
    for (const [key, tensor] of copy.tensors)
      expect(maxAbsDiff(optimizer.getState().tensors.get(key)!, tensor)).toBe(0);
    expect(optimizer.stateBytes()).toBe(
      pairs(peft).reduce((sum, p) => sum + 4 * (2 * p.b.size + p.r * p.r), 0),
    );
    tf.dispose([...gradMap.values(), ...copy.tensors.values()]);
    optimizer.dispose();
  });

  it('refuses to step once A was replaced, and follows lrScale', async () => {
    const { peft } = adapted('lora-fa', CONFIG);
    const optimizer = await LoraFaOptimizer.create(peft, { lr: 0.5 });
    optimizer.lrScale = 0.25;
    expect(optimizer.lr).toBe(0.125);
    const first = pairs(peft)[0]!;
    const gradMap = new Map([[first.b, tf.onesLike(first.b.value)]]);
    first.a.assign(tf.mul(first.a.value, 2));
    expect(() => optimizer.step(gradMap)).toThrow(/lora_A of "transformer.h.0.attn.c_attn" was changed/);
    expect(() => optimizer.step(new Map([[first.a, tf.onesLike(first.a.value)]]))).toThrow(/does not manage/);
    optimizer.dispose();
  });
});

describe('createOptimizer', () => {
  it("gives PEFT's LoRA-FA optimizer by default and core's AdamW on B only with optimizer: 'adamw'", async () => {
    const { peft } = adapted('lora-fa', CONFIG);
    const fa = await createOptimizer(peft, { lr: 0.01 });
    expect(fa).toBeInstanceOf(LoraFaOptimizer);
    expect((fa as LoraFaOptimizer).options).toMatchObject({
      lr: 0.01,
      eps: 1e-6,
      weightDecay: 0,
      betas: [0.9, 0.999],
    });
    const adamw = await createOptimizer(peft, { optimizer: 'adamw', lr: 0.01 });
    expect(adamw).toBeInstanceOf(AdamW);
    const bs = new Set(pairs(peft).map((p) => p.b));
    expect(new Set(adamw.parameters())).toEqual(bs);
    expect(new Set(fa.parameters())).toEqual(bs);
    await expect(createOptimizer(peft, { optimizer: 'sgd' as 'adamw' })).rejects.toThrow(/unknown optimizer/);
    fa.dispose();
    adamw.dispose();
  });
});
