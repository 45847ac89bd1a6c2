// Kernel micro-benchmark for the wasm backend: each case with tfjs-wasm's own kernels, with
// registerTrainingKernels() on XNNPACK (matmuls) and tfjs ops (no fused kernels), and with core's
// SIMD GEMM and fused kernels (the default), next to the plain-matMul peak of the same run. Shapes
// are those of a GPT-2-small-like training step (B=8, T=128, D=384, H=6).
// Usage: pnpm --filter @peft/core kernel-bench
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { registerAllGradients } from '../src/backend/register_gradients.js';
import {
  crossEntropy,
  geluNew,
  layerNorm,
  registerTrainingKernels,
  setWasmFusedKernels,
  setWasmMatmulEngine,
  unregisterTrainingKernels,
} from '../src/kernels/index.js';
import { scaledDotProductAttention } from '../src/nn/attention.js';

interface Case {
  name: string;
  /** Nominal floating-point operations of one run (multiply-add = 2), for GFLOP/s. */
  flops: number;
  /** Inputs of one run, made outside the timed region (fresh tensors, as in training). */
  prepare: () => tf.Tensor[];
  run: (inputs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
  /** Without overrides, when the plain wasm backend cannot run `run` (a missing kernel). */
  baseline?: { note: string; run: (inputs: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
}

const B = 8;
const T = 128;
const D = 384;
const H = 6;
const HD = D / H;
const BUDGET_MS = 1200;

const normal = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const mm = (m: number, k: number, n: number, batch = 1) => 2 * batch * m * k * n;
const C = Math.sqrt(2 / Math.PI);

/** gelu_new written with tanh and pow, and its derivative: what a model does without geluNew. */
const geluTanh = (x: tf.Tensor) =>
  tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(tf.mul(C, tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))));
function geluTanhGrad(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const t = tf.tanh(tf.mul(C, tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))));
  const dt = tf.mul(tf.sub(1, tf.square(t)), tf.mul(C, tf.add(1, tf.mul(3 * 0.044715, tf.pow(x, 2)))));
  return tf.mul(dy, tf.add(tf.mul(0.5, tf.add(1, t)), tf.mul(tf.mul(0.5, x), dt)));
}
const geluNewGrad = (x: tf.Tensor, dy: tf.Tensor) => tf.grad((t: tf.Tensor) => geluNew(t))(x, dy);

const cases: Case[] = [
  {
    name: 'matMul [1024x384]@[384x1152] (plain: the peak)',
    flops: mm(1024, 384, 1152),
    prepare: () => [normal([B * T, D], 1), normal([D, 3 * D], 2)],
    run: ([a, b]) => tf.matMul(a!, b!),
  },
  {
    name: '  same, transposeA (weight gradient)',
    flops: mm(1024, 384, 1152),
    prepare: () => [normal([D, B * T], 1), normal([D, 3 * D], 2)],
    run: ([a, b]) => tf.matMul(a!, b!, true, false),
  },
  {
    name: '  same, transposeB (input gradient)',
    flops: mm(1024, 384, 1152),
    prepare: () => [normal([B * T, D], 1), normal([3 * D, D], 2)],
    run: ([a, b]) => tf.matMul(a!, b!, false, true),
  },
  {
    name: 'attention q@kT 48x[128x64]@[64x128]',
    flops: mm(T, HD, T, B * H),
    prepare: () => [normal([B, H, T, HD], 3), normal([B, H, T, HD], 4)],
    run: ([q, k]) => tf.matMul(q!, k!, false, true),
  },
  {
    name: 'attention p@v 48x[128x128]@[128x64]',
    flops: mm(T, T, HD, B * H),
    prepare: () => [normal([B, H, T, T], 5), normal([B, H, T, HD], 6)],
    run: ([p, v]) => tf.matMul(p!, v!),
  },
  {
    name: 'gather grad: 1024 ids into [256x384]',
    flops: B * T * D,
    prepare: () => [normal([B * T, D], 7), tf.randomUniform([B * T], 0, 256, 'int32', 8)],
    run: ([dy, ids]) => tf.unsortedSegmentSum(dy!, ids as tf.Tensor1D, 256),
    baseline: {
      note: 'no kernel; one-hot matmul',
      run: ([dy, ids]) => tf.matMul(tf.oneHot(ids!, 256), dy!, true, false),
    },
  },
  {
    name: 'geluNew fwd, 1.5M floats (8 flop/elt)',
    flops: 8 * B * T * 4 * D,
    prepare: () => [normal([B * T, 4 * D], 9)],
    run: ([x]) => geluNew(x!),
    baseline: { note: 'tanh formula', run: ([x]) => geluTanh(x!) },
  },
  {
    name: 'geluNew fwd+bwd (tf.grad), 1.5M (22 flop/elt)',
    flops: 22 * B * T * 4 * D,
    prepare: () => [normal([B * T, 4 * D], 9), normal([B * T, 4 * D], 10)],
    run: ([x, dy]) => geluNewGrad(x!, dy!),
    baseline: { note: 'tanh formula', run: ([x, dy]) => [geluTanh(x!), geluTanhGrad(x!, dy!)] },
  },
  {
    name: 'LayerNorm fwd+bwd [1024x384] (14 flop/elt)',
    flops: 14 * B * T * D,
    prepare: () => [normal([B * T, D], 17), normal([D], 18), normal([D], 19), normal([B * T, D], 20)],
    run: ([x, g, b, dy]) =>
      tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => layerNorm(a, c, e, 1e-5))([x!, g!, b!], dy),
  },
  {
    name: 'causal attention fwd+bwd [8,6,128,64]',
    // Counted as the dense products (the masked half is skipped by the fused kernel).
    flops: 3 * mm(T, HD, T, B * H) * 2,
    prepare: () => [
      normal([B, H, T, HD], 21),
      normal([B, H, T, HD], 22),
      normal([B, H, T, HD], 23),
      normal([B, H, T, HD], 24),
    ],
    run: ([q, k, v, dy]) =>
      tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => scaledDotProductAttention(a, c, e))(
        [q!, k!, v!],
        dy,
      ),
  },
  {
    name: 'LM loss fwd+bwd: [1024x256] logits, cross-entropy',
    flops: 0,
    prepare: () => [normal([B * T, 256], 17), tf.randomUniform([B * T], 0, 256, 'int32', 18)],
    run: ([logits, targets]) => tf.grad((x: tf.Tensor) => crossEntropy(x, targets!))(logits!),
    baseline: {
      note: 'losses.softmaxCrossEntropy, one-hot labels',
      run: ([logits, targets]) =>
        tf.grad((x: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(targets!, 256), x))(logits!),
    },
  },
  {
    name: 'one token: [1x384]@[384x1536] (generation)',
    flops: mm(1, D, 4 * D),
    prepare: () => [normal([1, D], 25), normal([D, 4 * D], 26)],
    run: ([a, b]) => tf.matMul(a!, b!),
  },
  {
    name: 'split [8,128,3,6,64] on axis 2 (0 flop)',
    flops: 0,
    prepare: () => [normal([B, T, 3, H, HD], 11)],
    run: ([x]) => tf.split(x!, 3, 2),
  },
  {
    name: 'transpose [8,128,3,6,64] -> [3,8,6,128,64]',
    flops: 0,
    prepare: () => [normal([B, T, 3, H, HD], 11)],
    run: ([x]) => tf.transpose(x!, [2, 0, 3, 1, 4]),
  },
  {
    name: 'where(mask [1,1,128,128], scores [8,6,128,128])',
    flops: 0,
    prepare: () => [tf.greater(normal([1, 1, T, T], 12), 0), normal([B, H, T, T], 13)],
    run: ([mask, s]) => tf.where(mask!, s!, tf.scalar(-1e9)),
  },
  {
    name: 'gather 1024 rows of [256x384]',
    flops: 0,
    prepare: () => [normal([256, D], 14), tf.randomUniform([B * T], 0, 256, 'int32', 15)],
    run: ([table, ids]) => tf.gather(table!, ids!),
  },
  {
    name: 'bias grad: sum([1024x1152], 0)',
    flops: B * T * 3 * D,
    prepare: () => [normal([B * T, 3 * D], 16)],
    run: ([x]) => tf.sum(x!, 0),
  },
];

/** Min wall time of runs within the budget (one untimed warm-up run first). */
function time(c: Case, run: Case['run']): number {
  let best = Number.POSITIVE_INFINITY;
  let spent = 0;
  for (let i = 0; i < 8 && (i < 2 || spent < BUDGET_MS); i++) {
    const inputs = c.prepare();
    const t0 = performance.now();
    const out = tf.tidy(() => run(inputs));
    for (const t of Array.isArray(out) ? out : [out]) t.dataSync();
    const ms = performance.now() - t0;
    tf.dispose([inputs, out]);
    spent += ms;
    if (i > 0) best = Math.min(best, ms);
  }
  return best;
}

function cell(ms: number, flops: number, peak: number): string {
  const rate =
    flops > 0 ? `${((flops / ms) * 1e-6).toFixed(1).padStart(5)} GF/s ${pct(flops / ms, peak)}` : '';
  return `${ms.toFixed(1).padStart(7)} ms ${rate}`.padEnd(34);
}
const pct = (rate: number, peak: number) => `${Math.round((100 * rate) / peak)}%`.padStart(4);

async function main() {
  registerAllGradients();
  await tf.setBackend('wasm');
  const started = performance.now();
  // Interleaved (each case without, then with the overrides) so that load changes on a shared
  // machine hit both columns alike.
  const before: number[] = [];
  const xnnpack: number[] = [];
  const after: number[] = [];
  for (const c of cases) {
    unregisterTrainingKernels();
    try {
      before.push(time(c, c.baseline?.run ?? c.run));
    } catch {
      before.push(Number.NaN);
    }
    registerTrainingKernels();
    setWasmMatmulEngine('xnnpack');
    setWasmFusedKernels(false);
    xnnpack.push(time(c, c.run));
    setWasmMatmulEngine('simd');
    setWasmFusedKernels(true);
    after.push(time(c, c.run));
  }
  const peakBefore = cases[0]!.flops / before[0]!;
  const peakXnnpack = cases[0]!.flops / xnnpack[0]!;
  const peakAfter = cases[0]!.flops / after[0]!;

  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
  console.log(`tfjs ${tf.version_core} wasm (${simd ? 'SIMD' : 'no SIMD'}), fresh inputs per run, min time`);
  console.log(
    `plain matMul peak: ${(peakBefore * 1e-6).toFixed(1)} GFLOP/s (tfjs-wasm), ${(peakXnnpack * 1e-6).toFixed(1)} (overrides on XNNPACK), ${(peakAfter * 1e-6).toFixed(1)} (core's SIMD GEMM); % = of that column's peak\n`,
  );
  console.log(
    `${'case'.padEnd(50)}${'tfjs-wasm'.padEnd(34)}${'overrides, XNNPACK, no fused'.padEnd(34)}${'core SIMD GEMM + fused'.padEnd(34)}speedup (vs tfjs-wasm, vs XNNPACK)`,
  );
  cases.forEach((c, i) => {
    const note = c.baseline ? `  [tfjs-wasm: ${c.baseline.note}]` : '';
    console.log(
      `${c.name.padEnd(50)}${cell(before[i]!, c.flops, peakBefore)}${cell(xnnpack[i]!, c.flops, peakXnnpack)}${cell(after[i]!, c.flops, peakAfter)}${(before[i]! / after[i]!).toFixed(1).padStart(6)}x ${(xnnpack[i]! / after[i]!).toFixed(2).padStart(5)}x${note}`,
    );
  });
  console.log(`\n(${((performance.now() - started) / 1000).toFixed(0)} s)`);
}

await main();
