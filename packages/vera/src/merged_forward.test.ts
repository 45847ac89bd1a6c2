// The folded VeRA forward (one adapter, no dropout) against the branch as PEFT writes it: values and
// gradients for x, λ_d and λ_b, both weight layouts.
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { mergedVeraLinear } from './merged_forward.js';

beforeAll(async () => {
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  await tf.setBackend('cpu');
});

const normal = (shape: number[], seed: number, scale = 1) =>
  tf.randomNormal(shape, 0, scale, 'float32', seed);

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Seeded operands without bias, and λ_d, λ_b as variables (the gradients taken are theirs). */
function seededLayer(inF: number, outF: number, r: number, fanInFanOut: boolean) {
  return {
    operands: {
      weight: normal(fanInFanOut ? [inF, outF] : [outF, inF], 1),
      bias: null,
      fanInFanOut,
      a: normal([r, inF], 2),
      b: normal([outF, r], 3),
    },
    lambdaD: tf.variable(normal([r], 5)),
    lambdaB: tf.variable(normal([outF], 6)),
  };
}

describe('mergedVeraLinear', () => {
  for (const fanInFanOut of [true, false]) {
    it(`equals base(x) + λ_b ⊙ B_s(λ_d ⊙ A_s x), values and gradients (fanInFanOut ${fanInFanOut})`, () => {
      const [rows, inF, outF, r] = [6, 12, 20, 8];
      const x = normal([2, rows / 2, inF], 1);
      const weight = normal(fanInFanOut ? [inF, outF] : [outF, inF], 2, 0.3);
      const bias = normal([outF], 3, 0.1);
      const a = normal([r, inF], 4, 0.5);
      const b = normal([outF, r], 5, 0.5);
      const lambdaD = normal([r], 6);
      const lambdaB = normal([outF], 7);
      const reference = (xi: tf.Tensor, ld: tf.Tensor, lb: tf.Tensor) => {
        const x2 = tf.reshape(xi, [-1, inF]);
        const base = tf.add(tf.matMul(x2, weight, false, !fanInFanOut), bias);
        const branch = tf.mul(tf.matMul(tf.mul(tf.matMul(x2, a, false, true), ld), b, false, true), lb);
        return tf.reshape(tf.add(base, branch), [2, rows / 2, outF]);
      };
      const folded = (xi: tf.Tensor, ld: tf.Tensor, lb: tf.Tensor) =>
        mergedVeraLinear(xi, ld, lb, { weight, bias, fanInFanOut, a, b });
      expect(maxAbsDiff(folded(x, lambdaD, lambdaB), reference(x, lambdaD, lambdaB))).toBeLessThan(1e-5);
      const dy = normal([2, rows / 2, outF], 8);
      const want = tf.grads(reference)([x, lambdaD, lambdaB], dy);
      const got = tf.grads(folded)([x, lambdaD, lambdaB], dy);
      for (let i = 0; i < 3; i++) expect(maxAbsDiff(got[i]!, want[i]!), `input ${i}`).toBeLessThan(1e-4);
    });
  }

  it('leaves no tensor behind', () => {
    const inF = 8;
    const { operands, lambdaD, lambdaB } = seededLayer(inF, 8, 4, true);
    const x = normal([5, inF], 4);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(mergedVeraLinear(x, lambdaD, lambdaB, operands)));
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("mergedVeraLinear's x gradient", () => {
  it('is computed only when wanted: no dy·(W + ΔW) under an input from frozen layers', async () => {
    const [rows, inF] = [5, 8];
    const { operands, lambdaD, lambdaB } = seededLayer(inF, 12, 4, false);
    const matMulOutputs = async (x: tf.Tensor) => {
      const profile = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(() =>
          tf.sum(mergedVeraLinear(tf.mul(x, 1), lambdaD, lambdaB, operands)),
        );
        tf.dispose([value, ...Object.values(grads)]);
      });
      return profile.kernels.filter((k) => k.name === 'BatchMatMul').map((k) => k.outputShapes[0]!.join('x'));
    };
    const frozen = await matMulOutputs(normal([rows, inF], 4));
    expect(frozen).not.toContain(`${rows}x${inF}`);
    const trained = await matMulOutputs(tf.variable(normal([rows, inF], 4)));
    expect(trained.filter((shape) => shape === `${rows}x${inF}`)).toHaveLength(1);
  });
});
