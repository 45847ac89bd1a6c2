// Training a prefix on the WASM backend (Node's default): the prefix table is read through an
// embedding lookup (gather), whose gradient is UnsortedSegmentSum, a kernel tfjs-backend-wasm lacks
// and core's `registerTrainingKernels()` (run by `initBackend`) provides.
import '@tensorflow/tfjs-backend-cpu';
import { AdamW, initBackend, Trainer } from '@peft/core';
import { causalLMLoss } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { getPrefixTuningModel } from './index.js';
import { snapshot, tinyGPT2 } from './models.test-support.js';

const IDS = [
  [3, 14, 15, 9, 2, 6],
  [5, 3, 5, 8, 9, 7],
];

beforeAll(async () => {
  const report = await initBackend({ backend: 'wasm' });
  expect(report.backend).toBe('wasm');
});

/** Loss and the prefix table's gradient on the current backend, for a model built from seed 1. */
function prefixGradient(): { loss: number; grad: Float32Array } {
  const model = tinyGPT2(1);
  const peft = getPrefixTuningModel(model, { numVirtualTokens: 3 });
  const [table] = peft.parameters().filter((p) => p.requiresGrad);
  const { value, grads } = tf.variableGrads(() => causalLMLoss(model, IDS), [table!.value]);
  const result = { loss: value.dataSync()[0]!, grad: grads[table!.value.name]!.dataSync() as Float32Array };
  tf.dispose([value, ...Object.values(grads)]);
  peft.dispose();
  return result;
}

describe('prefix tuning on wasm', () => {
  it("has core's UnsortedSegmentSum kernel, and the prefix gradient agrees with the cpu backend", async () => {
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
    let wasm: ReturnType<typeof prefixGradient> = { loss: 0, grad: new Float32Array() };
    const profile = await tf.profile(() => {
      wasm = prefixGradient();
    });
    expect(profile.kernelNames).toContain('UnsortedSegmentSum'); // the gather's gradient ran
    await tf.setBackend('cpu');
    const cpu = prefixGradient();
    await tf.setBackend('wasm');
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-5);
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < cpu.grad.length; i++) {
      worst = Math.max(worst, Math.abs(wasm.grad[i]! - cpu.grad[i]!));
      scale = Math.max(scale, Math.abs(cpu.grad[i]!));
    }
    expect(scale).toBeGreaterThan(0);
    expect(worst / scale).toBeLessThan(1e-4);
  });

  for (const projection of [false, true]) {
    it(`trains (prefix_projection ${projection}): the loss falls and only the prefix encoder changes`, async () => {
      const model = tinyGPT2(1);
      const peft = getPrefixTuningModel(model, { numVirtualTokens: 3, prefixProjection: projection });
      const before = snapshot(peft.namedParameters());
      peft.train();
      const trainer = new Trainer({
        module: peft,
        loss: (ids: number[][]) => causalLMLoss(model, ids),
        optimizer: new AdamW(peft.namedParameters(), { lr: 0.1 }),
      });
      const first = await trainer.trainStep(IDS);
      const second = await trainer.trainStep(IDS);
      const third = await trainer.trainStep(IDS);
      expect(third.loss).toBeLessThan(first.loss);
      expect(Number.isFinite(second.gradNorm)).toBe(true);
      trainer.dispose();
      const after = snapshot(peft.namedParameters());
      for (const [name, value] of before) {
        const changed = value.some((v, i) => v !== after.get(name)![i]);
        expect(changed, name).toBe(name.startsWith('prompt_encoder.default.'));
      }
      peft.dispose();
    });
  }
});
