import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Parameter } from '../nn/parameter.js';
import { AdamW } from './adamw.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** torch.optim.AdamW's update for one parameter, in float64, written from the PyTorch docs/source. */
function referenceAdamW(
  initial: number[],
  grads: number[][],
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; lrScales?: number[] },
): number[] {
  const p = [...initial];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, index) => {
    const t = index + 1;
    const lr = o.lr * (o.lrScales?.[index] ?? 1);
    const bc1 = 1 - o.beta1 ** t;
    const bc2 = 1 - o.beta2 ** t;
    for (let i = 0; i < p.length; i++) {
      p[i]! *= 1 - lr * o.weightDecay;
      m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
      v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps;
      p[i]! -= (lr / bc1) * (m[i]! / denom);
    }
  });
  return p;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]!));
    expect(Math.abs(actual[i]! - expected[i]!) / scale, `element ${i}`).toBeLessThan(tolerance);
  }
}

const initialW = [0.5, -1.25, 2, 0.03, -0.7, 1.1];
const gradSequence = [
  [0.1, -0.2, 0.3, 0.05, -0.4, 0.9],
  [-0.3, 0.25, 0.1, -0.05, 0.2, -0.6],
  [0.02, 0.5, -0.7, 0.3, 0.1, 0.2],
  [1.5, -0.1, 0.05, -0.9, 0.4, 0.01],
  [0.0, 0.3, -0.2, 0.6, -0.5, 0.7],
];

function runSteps(optimizer: AdamW, parameter: Parameter, grads: number[][], lrScales?: number[]): void {
  grads.forEach((g, i) => {
    if (lrScales) optimizer.lrScale = lrScales[i]!;
    const grad = tf.tensor(g, parameter.shape);
    optimizer.step(new Map([[parameter, grad]]));
    grad.dispose();
  });
}

describe('AdamW', () => {
  it('matches PyTorch AdamW over several steps (defaults)', () => {
    const w = new Parameter(tf.tensor(initialW, [2, 3]));
    const optimizer = new AdamW([['w', w]]);
    runSteps(optimizer, w, gradSequence);
    const expected = referenceAdamW(initialW, gradSequence, {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0.01,
    });
    expectClose(w.value.dataSync(), expected, 2e-6);
    expect(optimizer.stepCount).toBe(5);
    optimizer.dispose();
    w.dispose();
  });

  it('matches with a large rate, strong decay, other betas and a schedule scale', () => {
    const w = new Parameter(tf.tensor(initialW, [6]));
    const options = { lr: 0.1, betas: [0.8, 0.95] as const, eps: 1e-6, weightDecay: 0.5 };
    const optimizer = new AdamW([['w', w]], options);
    const lrScales = [0, 0.5, 1, 0.75, 0.25];
    runSteps(optimizer, w, gradSequence, lrScales);
    const expected = referenceAdamW(initialW, gradSequence, {
      lr: 0.1,
      beta1: 0.8,
      beta2: 0.95,
      eps: 1e-6,
      weightDecay: 0.5,
      lrScales,
    });
    expectClose(w.value.dataSync(), expected, 2e-6);
    expect(optimizer.lr).toBeCloseTo(0.1 * 0.25, 12);
    optimizer.dispose();
    w.dispose();
  });

  it('applies per-group options (no decay for a bias group)', () => {
    const w = new Parameter(tf.tensor(initialW, [6]));
    const b = new Parameter(tf.tensor(initialW, [6]));
    const optimizer = new AdamW(
      [{ parameters: [['w', w]] }, { parameters: [['b', b]], weightDecay: 0, lr: 0.05 }],
      { lr: 0.01, weightDecay: 0.2 },
    );
    gradSequence.forEach((g) => {
      const grad = tf.tensor(g);
      optimizer.step(
        new Map([
          [w, grad],
          [b, grad],
        ]),
      );
      grad.dispose();
    });
    const common = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    expectClose(
      w.value.dataSync(),
      referenceAdamW(initialW, gradSequence, { ...common, lr: 0.01, weightDecay: 0.2 }),
      2e-6,
    );
    expectClose(
      b.value.dataSync(),
      referenceAdamW(initialW, gradSequence, { ...common, lr: 0.05, weightDecay: 0 }),
      2e-6,
    );
    optimizer.dispose();
    tf.dispose([w.value, b.value]);
  });

  it('keeps a per-parameter step: a parameter without a gradient is untouched, its bias correction starts later', () => {
    const a = new Parameter(tf.tensor(initialW, [6]));
    const b = new Parameter(tf.tensor(initialW, [6]));
    const optimizer = new AdamW(
      [
        ['a', a],
        ['b', b],
      ],
      { lr: 0.01 },
    );
    const g0 = tf.tensor(gradSequence[0]!);
    optimizer.step(new Map([[a, g0]]));
    expect(b.value.dataSync()).toEqual(new Float32Array(initialW));
    const g1 = tf.tensor(gradSequence[1]!);
    optimizer.step(
      new Map([
        [a, g1],
        [b, g1],
      ]),
    );
    const options = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
    expectClose(b.value.dataSync(), referenceAdamW(initialW, [gradSequence[1]!], options), 2e-6);
    expect(optimizer.getState().scalars).toEqual({ step_count: 2, 'a.step': 2, 'b.step': 1 });
    tf.dispose([g0, g1]);
    optimizer.dispose();
    a.dispose();
    b.dispose();
  });

  it('ignores frozen parameters and counts its state bytes', () => {
    const trainable = new Parameter(tf.zeros([4, 5]));
    const frozen = new Parameter(tf.zeros([100]), { requiresGrad: false });
    const optimizer = new AdamW([
      ['t', trainable],
      ['f', frozen],
    ]);
    expect(optimizer.parameters()).toEqual([trainable]);
    // Two float32 moments of 20 elements.
    expect(optimizer.stateBytes()).toBe(2 * 20 * 4);
    optimizer.dispose();
    trainable.dispose();
    frozen.dispose();
  });

  it('rejects a gradient of a parameter it does not manage or of the wrong shape, changing nothing', () => {
    const w = new Parameter(tf.tensor(initialW, [6]));
    const other = new Parameter(tf.zeros([6]));
    const optimizer = new AdamW([['w', w]]);
    const good = tf.ones([6]);
    const bad = tf.ones([3]);
    expect(() =>
      optimizer.step(
        new Map([
          [w, good],
          [other, good],
        ]),
      ),
    ).toThrow(/does not manage/);
    expect(() => optimizer.step(new Map([[w, bad]]))).toThrow(/shape \[3\]/);
    expect(w.value.dataSync()).toEqual(new Float32Array(initialW));
    expect(optimizer.stepCount).toBe(0);
    tf.dispose([good, bad]);
    optimizer.dispose();
    w.dispose();
    other.dispose();
  });

  it('round-trips its state: a restored optimizer continues bit-identically', () => {
    const makeRun = () => {
      const w = new Parameter(tf.tensor(initialW, [2, 3]));
      return { w, optimizer: new AdamW([['layer.w', w]], { lr: 0.05 }) };
    };
    const straight = makeRun();
    runSteps(straight.optimizer, straight.w, gradSequence);

    const first = makeRun();
    runSteps(first.optimizer, first.w, gradSequence.slice(0, 2));
    const saved = first.optimizer.getState();
    expect([...saved.tensors.keys()]).toEqual(['layer.w.exp_avg', 'layer.w.exp_avg_sq']);
    const copies = new Map([...saved.tensors].map(([name, t]) => [name, tf.clone(t)]));
    const resumed = makeRun();
    resumed.w.assign(first.w.value);
    resumed.optimizer.setState({ tensors: copies, scalars: { ...saved.scalars } });
    runSteps(resumed.optimizer, resumed.w, gradSequence.slice(2));
    expect(resumed.w.value.dataSync()).toEqual(straight.w.value.dataSync());
    expect(resumed.optimizer.stepCount).toBe(5);

    tf.dispose([...copies.values()]);
    for (const run of [straight, first, resumed]) {
      run.optimizer.dispose();
      run.w.dispose();
    }
  });

  it('rejects a mismatched state and changes nothing', () => {
    const w = new Parameter(tf.tensor(initialW, [2, 3]));
    const optimizer = new AdamW([['w', w]]);
    runSteps(optimizer, w, gradSequence.slice(0, 1));
    const before = optimizer.getState();
    const beforeValues = [...before.tensors.values()].map((t) => t.dataSync().slice());
    const wrongShape = tf.zeros([3, 2]);
    const right = tf.ones([2, 3]);
    expect(() =>
      optimizer.setState({
        tensors: new Map([
          ['w.exp_avg', right],
          ['w.exp_avg_sq', wrongShape],
        ]),
        scalars: { step_count: 3, 'w.step': 3 },
      }),
    ).toThrow(/"w.exp_avg_sq" has shape \[3,2\]/);
    expect(() =>
      optimizer.setState({
        tensors: new Map([['w.exp_avg', right]]),
        scalars: { step_count: 3, 'w.step': 3 },
      }),
    ).toThrow(/missing tensor "w.exp_avg_sq"/);
    expect(() =>
      optimizer.setState({
        tensors: new Map([
          ['w.exp_avg', right],
          ['w.exp_avg_sq', right],
        ]),
        scalars: { step_count: 3 },
      }),
    ).toThrow(/"w.step" must be a non-negative integer/);
    const after = optimizer.getState();
    expect([...after.tensors.values()].map((t) => t.dataSync())).toEqual(beforeValues);
    expect(after.scalars).toEqual({ step_count: 1, 'w.step': 1 });
    tf.dispose([wrongShape, right]);
    optimizer.dispose();
    w.dispose();
  });

  it('leaks no tensor per step', () => {
    const w = new Parameter(tf.tensor(initialW, [6]));
    const optimizer = new AdamW([['w', w]]);
    const grad = tf.ones([6]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) optimizer.step(new Map([[w, grad]]));
    expect(tf.memory().numTensors).toBe(before);
    grad.dispose();
    optimizer.dispose();
    w.dispose();
  });
});
