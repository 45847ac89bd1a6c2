// core's fused ops on wasm (one SIMD kernel each way) against the same ops composed from tfjs
// kernels on the cpu backend: values and gradients, odd sizes, the fallbacks, no leaks.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerAllGradients } from '../../backend/register_gradients.js';
import { scaledDotProductAttention } from '../../nn/attention.js';
import { registerTrainingKernels } from '../register_kernels.js';
import { setWasmMatmulEngine } from '../wasm/simd/simd_backend.js';
import { causalSelfAttention, causalSelfAttentionFusable } from './causal_attention.js';
import { geluNew } from './gelu_new.js';
import { layerNorm } from './layer_norm.js';
import { softmaxLastAxis } from './softmax.js';

beforeAll(async () => {
  registerAllGradients();
  registerTrainingKernels();
});

/** q | k | v of `[B, T, 3·H·D]` into heads, causal attention, heads merged back: `[B, T, H·D]`. */
function splitAttendMerge(qkv: tf.Tensor, heads: number, scale: number): tf.Tensor {
  const [b, t, width3] = qkv.shape as [number, number, number];
  const d = width3 / 3 / heads;
  const [q, k, v] = tf
    .split(qkv, 3, 2)
    .map((x) => tf.transpose(tf.reshape(x, [b, t, heads, d]), [0, 2, 1, 3])) as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
  const out = scaledDotProductAttention(q, k, v, { scale });
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b, t, heads * d]);
}

type Case = { inputs: () => tf.Tensor[]; f: (...xs: tf.Tensor[]) => tf.Tensor };

/** Value and gradients (of Σ f·w for fixed random w) on a backend, as arrays. */
async function evaluate(backend: string, { inputs, f }: Case) {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs();
    const y = f(...xs);
    const w = tf.randomNormal(y.shape, 0, 1, 'float32', 9);
    const grads = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(f(...args), w)))(xs);
    return { value: Array.from(y.dataSync()), grads: grads.map((g) => Array.from(g.dataSync())) };
  });
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  return a.reduce((worst, x, i) => Math.max(worst, Math.abs(x - b[i]!) / (1 + Math.abs(b[i]!))), 0);
}

/** The kernels a run of `f` dispatches on wasm. */
async function kernelsOn(run: () => tf.Tensor): Promise<string[]> {
  await tf.setBackend('wasm');
  const info = await tf.profile(() => {
    const y = run();
    y.dispose();
  });
  return info.kernelNames;
}

const normal = (shape: number[], seed: number, scale = 1, mean = 0) =>
  tf.randomNormal(shape, mean, scale, 'float32', seed);

describe('fused ops on wasm match the composed ops on cpu', () => {
  const cases: [string, Case, string[]][] = [
    ...[1, 3, 8, 1003].map((n): [string, Case, string[]] => [
      `geluNew on ${n} floats`,
      { inputs: () => [normal([n], 1, 4)], f: (x) => geluNew(x!) },
      ['PeftGeluNew'],
    ]),
    [
      'geluNew on large |x| (saturated sigmoid)',
      { inputs: () => [tf.tensor1d([-120, -30, -9, 0, 9, 30, 120])], f: (x) => geluNew(x!) },
      ['PeftGeluNew'],
    ],
    [
      'layerNorm [3, 5, 12]',
      {
        inputs: () => [normal([3, 5, 12], 2, 2, 1), normal([12], 3, 0.5, 1), normal([12], 4, 0.1)],
        f: (x, g, b) => layerNorm(x!, g!, b!, 1e-5),
      },
      ['PeftLayerNorm'],
    ],
    [
      'layerNorm [4, 6] (row not a multiple of 4: composed on wasm too)',
      {
        inputs: () => [normal([4, 6], 5), normal([6], 6, 0.5, 1), normal([6], 7, 0.1)],
        f: (x, g, b) => layerNorm(x!, g!, b!, 1e-5),
      },
      [],
    ],
    [
      'softmaxLastAxis [2, 3, 16]',
      { inputs: () => [normal([2, 3, 16], 8, 3)], f: (x) => softmaxLastAxis(x!) },
      ['PeftSoftmax'],
    ],
    ...(
      [
        [2, 3, 8, 8, 16],
        [1, 2, 12, 12, 8],
        [2, 1, 16, 36, 8],
        [1, 2, 4, 24, 5],
      ] as const
    ).map(([b, h, tq, tk, d]): [string, Case, string[]] => [
      `causal attention q [${b}, ${h}, ${tq}, ${d}], k/v ${tk} keys`,
      {
        inputs: () => [normal([b, h, tq, d], 20), normal([b, h, tk, d], 21), normal([b, h, tk, d], 22)],
        f: (q, k, v) => scaledDotProductAttention(q!, k!, v!, { scale: 0.3 }),
      },
      ['PeftCausalAttention'],
    ]),
    ...(
      [
        [2, 8, 3, 16],
        [1, 12, 2, 12],
        [3, 4, 1, 5],
      ] as const
    ).map(([b, t, h, d]): [string, Case, string[]] => [
      `causal self-attention from a packed qkv [${b}, ${t}, 3·${h}·${d}] (heads merged out)`,
      {
        inputs: () => [normal([b, t, 3 * h * d], 26)],
        // On cpu (and wherever it does not fuse): split, heads, attention, merge, from tfjs ops.
        f: (qkv) =>
          causalSelfAttentionFusable(qkv!, h)
            ? causalSelfAttention(qkv!, h, 0.3)
            : splitAttendMerge(qkv!, h, 0.3),
      },
      ['PeftCausalSelfAttention'],
    ]),
    [
      'causal attention with 6 queries (not a multiple of 4: composed, fused softmax)',
      {
        inputs: () => [normal([1, 2, 6, 8], 23), normal([1, 2, 8, 8], 24), normal([1, 2, 8, 8], 25)],
        f: (q, k, v) => scaledDotProductAttention(q!, k!, v!),
      },
      ['PeftSoftmax'],
    ],
    [
      'softmaxLastAxis [5, 6] (composed)',
      { inputs: () => [normal([5, 6], 9, 3)], f: (x) => softmaxLastAxis(x!) },
      [],
    ],
  ];
  for (const [name, testCase, fusedKernels] of cases) {
    it(name, async () => {
      const want = await evaluate('cpu', testCase);
      const got = await evaluate('wasm', testCase);
      expect(maxAbsDiff(got.value, want.value)).toBeLessThan(2e-6);
      for (const [i, g] of got.grads.entries()) expect(maxAbsDiff(g, want.grads[i]!)).toBeLessThan(5e-6);
      const kernels = await kernelsOn(() => tf.tidy(() => testCase.f(...testCase.inputs())));
      for (const kernel of fusedKernels) expect(kernels).toContain(kernel);
      if (fusedKernels.length === 0) expect(kernels.some((k) => k.startsWith('Peft'))).toBe(false);
      if (!fusedKernels.includes('PeftCausalAttention')) expect(kernels).not.toContain('PeftCausalAttention');
    });
  }

  it("composes attention when core's GEMM is off (as where tfjs runs XNNPACK on several threads)", async () => {
    setWasmMatmulEngine('xnnpack');
    try {
      const kernels = await kernelsOn(() =>
        tf.tidy(() =>
          scaledDotProductAttention(
            normal([1, 2, 8, 8], 1),
            normal([1, 2, 8, 8], 2),
            normal([1, 2, 8, 8], 3),
          ),
        ),
      );
      expect(kernels).not.toContain('PeftCausalAttention');
      expect(kernels).toContain('BatchMatMul');
    } finally {
      setWasmMatmulEngine('simd');
    }
  });

  it('fuses self-attention only for float32 [B, T, 3·heads·D] with T a multiple of 4', async () => {
    await tf.setBackend('wasm');
    tf.tidy(() => {
      expect(causalSelfAttentionFusable(tf.zeros([1, 8, 48]), 2)).toBe(true);
      expect(causalSelfAttentionFusable(tf.zeros([1, 6, 48]), 2)).toBe(false);
      expect(causalSelfAttentionFusable(tf.zeros([1, 8, 48]), 5)).toBe(false);
      expect(causalSelfAttentionFusable(tf.zeros([8, 48]), 2)).toBe(false);
      expect(causalSelfAttentionFusable(tf.zeros([1, 8, 48], 'int32'), 2)).toBe(false);
    });
    await tf.setBackend('cpu');
    expect(tf.tidy(() => causalSelfAttentionFusable(tf.zeros([1, 8, 48]), 2))).toBe(false);
  });

  it('self-attention leaves no tensor behind (forward and backward)', async () => {
    await tf.setBackend('wasm');
    const qkv = tf.variable(normal([2, 8, 48], 27));
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(causalSelfAttention(qkv, 2, 0.25))));
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    qkv.dispose();
  });

  it('leaves no tensor behind (forward and backward)', async () => {
    await tf.setBackend('wasm');
    const x = normal([64, 40], 11);
    const scale = tf.variable(tf.scalar(1.5));
    const gamma = tf.variable(tf.ones([40]));
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() =>
      tf.sum(softmaxLastAxis(layerNorm(geluNew(tf.mul(x, scale)), gamma, tf.zeros([40]), 1e-5))),
    );
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, scale, gamma]);
  });
});
