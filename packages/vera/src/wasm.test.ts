// VeRA on the WASM backend (Node's default): the layers slice the shared projections (`vera_A[:, :in]`
// takes a non-contiguous block of columns), and train through them; forward and the lambdas'
// gradients agree with the cpu backend.
import '@tensorflow/tfjs-backend-cpu';
import { initBackend, manualSeed } from '@peft/core';
import { languageModelLoss, ToyLM, tokenIds } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { getVeraModel } from './index.js';

beforeAll(async () => {
  const report = await initBackend({ backend: 'wasm' });
  expect(report.backend).toBe('wasm');
});

/** Loss and the gradients of every lambda on the current backend, for a model built from seed 1. */
function lambdaGradients(): { loss: number; grads: Float32Array[] } {
  manualSeed(1);
  const model = new ToyLM();
  // c_attn 8→24, c_proj 8→8 and 32→8: A [4, 32] and B [24, 4] are sliced by every layer but one.
  const peft = getVeraModel(model, { r: 4, targetModules: ['c_attn', 'c_proj'], initWeights: false });
  const trainable = peft.parameters().filter((p) => p.requiresGrad);
  const ids = tokenIds();
  const { value, grads } = tf.variableGrads(
    () => languageModelLoss(model, ids),
    trainable.map((p) => p.value),
  );
  const result = {
    loss: value.dataSync()[0]!,
    grads: trainable.map((p) => grads[p.value.name]!.dataSync() as Float32Array),
  };
  tf.dispose([value, ...Object.values(grads), ids]);
  peft.dispose();
  return result;
}

describe('VeRA on wasm', () => {
  it('gives the loss and lambda gradients of the cpu backend', async () => {
    const wasm = lambdaGradients();
    await tf.setBackend('cpu');
    const cpu = lambdaGradients();
    await tf.setBackend('wasm');
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-5);
    expect(wasm.grads).toHaveLength(12);
    let worst = 0;
    let scale = 0;
    cpu.grads.forEach((grad, g) => {
      for (let i = 0; i < grad.length; i++) {
        worst = Math.max(worst, Math.abs(wasm.grads[g]![i]! - grad[i]!));
        scale = Math.max(scale, Math.abs(grad[i]!));
      }
    });
    expect(scale).toBeGreaterThan(1e-3);
    expect(worst / scale).toBeLessThan(1e-4);
  });
});
