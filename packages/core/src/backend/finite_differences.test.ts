// Gradients of every op a transformer block uses, checked against central finite differences on the
// cpu backend (float32: small shapes, eps 1e-2). Observed errors are 1e-6..2e-4, so the tolerance is
// 1e-3 rather than the customary 1e-2; the first test shows a 10% gradient error is caught.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  applyRope,
  type BlockConfig,
  causalAttention,
  causalMask,
  checkGradients,
  geluTanh,
  gpt2Block,
  gpt2BlockWeights,
  layerNorm,
  llamaBlock,
  llamaBlockWeights,
  randomValues,
  rmsNorm,
  ropeTables,
  silu,
  toTensors,
} from '../test-support/index.js';
import { initBackend } from './init_backend.js';

const TOLERANCE = 1e-3;
let seed = 100;
const rand = (shape: number[], scale = 1) =>
  tf.tensor(
    randomValues(
      shape.reduce((a, b) => a * b, 1),
      seed++,
      scale,
    ),
    shape,
  );

function expectGradientsMatch(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], eps?: number) {
  const { relativeErrors } = checkGradients(f, inputs, eps === undefined ? {} : { eps });
  for (const [i, error] of relativeErrors.entries()) {
    expect(error, `input ${i}: relative error ${error.toExponential(2)}`).toBeLessThan(TOLERANCE);
  }
  tf.dispose(inputs);
}

describe('gradients agree with central finite differences (cpu)', () => {
  beforeAll(async () => {
    await initBackend({ backend: 'cpu' });
  });

  it('the check itself catches a wrong gradient', () => {
    // sin with a gradient of 1.1 cos: analytic and numeric differ by 10%.
    const wrongSin = tf.customGrad((...args) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([x]);
      return {
        value: tf.sin(x),
        gradFunc: (dy, [saved]) => tf.mul(dy, tf.mul(1.1, tf.cos(saved!))),
      };
    });
    const x = rand([3, 4]);
    const { relativeErrors } = checkGradients((t) => wrongSin(t), [x]);
    expect(relativeErrors[0]).toBeGreaterThan(0.05);
    x.dispose();
  });

  for (const [transposeA, transposeB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    it(`matMul transposeA=${transposeA} transposeB=${transposeB}`, () => {
      const a = rand(transposeA ? [4, 3] : [3, 4]);
      const b = rand(transposeB ? [5, 4] : [4, 5]);
      expectGradientsMatch(
        (x, y) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D, transposeA, transposeB),
        [a, b],
      );
    });
  }

  it('batched matMul (rank 3 and rank 4, with transposes)', () => {
    expectGradientsMatch(
      (x, y) => tf.matMul(x as tf.Tensor3D, y as tf.Tensor3D),
      [rand([2, 3, 4]), rand([2, 4, 2])],
    );
    expectGradientsMatch(
      (x, y) => tf.matMul(x as tf.Tensor4D, y as tf.Tensor4D, false, true),
      [rand([2, 2, 3, 4]), rand([2, 2, 3, 4])],
    );
    expectGradientsMatch(
      (x, y) => tf.matMul(x as tf.Tensor4D, y as tf.Tensor4D, true, false),
      [rand([1, 2, 4, 3]), rand([1, 2, 4, 2])],
    );
  });

  it('softmax and logSoftmax on the last axis', () => {
    expectGradientsMatch((x) => tf.softmax(x, -1), [rand([3, 5], 2)]);
    expectGradientsMatch((x) => tf.logSoftmax(x, -1), [rand([2, 2, 5], 2)]);
  });

  it('layer norm built from mean / sub / square / rsqrt', () => {
    expectGradientsMatch((x, g, b) => layerNorm(x, g, b), [rand([3, 6], 2), rand([6]), rand([6])]);
  });

  it('RMSNorm', () => {
    expectGradientsMatch((x, g) => rmsNorm(x, g), [rand([3, 6], 2), rand([6])]);
  });

  it('GELU (tanh form) and SiLU', () => {
    expectGradientsMatch((x) => geluTanh(x), [rand([4, 5], 3)]);
    expectGradientsMatch((x) => silu(x), [rand([4, 5], 3)]);
  });

  it('gather (embedding lookup), repeated indices included', () => {
    const ids = tf.tensor1d([3, 1, 1, 5, 0], 'int32');
    expectGradientsMatch((table) => tf.gather(table, ids), [rand([6, 4])]);
    expectGradientsMatch(
      (table) =>
        tf.gather(
          table,
          tf.tensor2d(
            [
              [2, 2],
              [0, 1],
            ],
            [2, 2],
            'int32',
          ),
        ),
      [rand([3, 4])],
    );
    ids.dispose();
  });

  it('concat, slice and split along the last axis', () => {
    expectGradientsMatch((a, b) => tf.concat([a, b], -1), [rand([2, 3, 2]), rand([2, 3, 4])]);
    expectGradientsMatch((x) => tf.slice(x, [0, 0, 1], [-1, -1, 3]), [rand([2, 3, 5])]);
    expectGradientsMatch(
      (x) => {
        const [a, b, c] = tf.split(x, 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.add(tf.mul(a, b), tf.mul(c, 2));
      },
      [rand([2, 6])],
    );
    expectGradientsMatch(
      (x) => {
        const [a, b] = tf.split(x, [1, 3], -1) as [tf.Tensor, tf.Tensor];
        return tf.mul(a, tf.sum(b, -1, true));
      },
      [rand([3, 4])],
    );
  });

  it('reshape and transpose', () => {
    expectGradientsMatch((x) => tf.transpose(tf.reshape(x, [2, 3, 2, 2]), [0, 2, 1, 3]), [rand([6, 4])]);
  });

  it('add and mul with broadcasting', () => {
    expectGradientsMatch((a, b) => tf.add(a, b), [rand([2, 3, 4]), rand([4])]);
    expectGradientsMatch((a, b) => tf.mul(a, b), [rand([2, 1, 4]), rand([3, 1])]);
    expectGradientsMatch((a, b) => tf.mul(tf.add(a, b), b), [rand([2, 3]), rand([1, 3])]);
  });

  it('where with a causal mask, and masked attention', () => {
    const mask = causalMask(4);
    expectGradientsMatch((x) => tf.softmax(tf.where(mask, x, tf.scalar(-1e9)), -1), [rand([2, 4, 4], 2)]);
    expectGradientsMatch((x, y) => tf.where(mask, x, y), [rand([4, 4]), rand([4, 4])]);
    expectGradientsMatch(
      (q, k, v) => causalAttention(q, k, v),
      [rand([1, 2, 4, 3]), rand([1, 2, 4, 3]), rand([1, 2, 4, 3])],
    );
    mask.dispose();
  });

  it('rotary position embedding', () => {
    const { cos, sin } = ropeTables(3, 4);
    expectGradientsMatch((x) => applyRope(x, cos, sin), [rand([1, 2, 3, 4], 2)]);
    tf.dispose([cos, sin]);
  });

  it('cross-entropy: logSoftmax with oneHot, and with gather of the label log-probabilities', () => {
    const vocab = 5;
    const labels = [4, 0, 2];
    const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), vocab);
    expectGradientsMatch(
      (logits) => tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits, -1)), -1))),
      [rand([3, vocab], 2)],
    );
    const flatIndex = tf.tensor1d(
      labels.map((label, row) => row * vocab + label),
      'int32',
    );
    expectGradientsMatch(
      (logits) => tf.neg(tf.mean(tf.gather(tf.reshape(tf.logSoftmax(logits, -1), [-1]), flatIndex))),
      [rand([3, vocab], 2)],
    );
    tf.dispose([oneHot, flatIndex]);
  });

  const config: BlockConfig = { batch: 1, seqLen: 3, dModel: 4, nHeads: 2, dHidden: 8 };
  for (const [name, block, weights] of [
    ['GPT-2', gpt2Block, gpt2BlockWeights],
    ['LLaMA', llamaBlock, llamaBlockWeights],
  ] as const) {
    it(`a whole ${name} block, wrt its input and every weight`, () => {
      const named = toTensors(weights(config));
      const names = Object.keys(named);
      const x = rand([config.batch, config.seqLen, config.dModel]);
      expectGradientsMatch(
        (input, ...ws) => block(input, Object.fromEntries(names.map((n, i) => [n, ws[i]!])), config),
        [x, ...names.map((n) => named[n]!)],
      );
    });
  }
});
