import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { getPeftModel, PeftModel } from '../adapters/peft_model.js';
import { ToyModel, toyMethod } from '../adapters/toy_method.test-support.js';
import { AdamW } from './adamw.js';
import { createTrainingOptimizer } from './training_optimizer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('createTrainingOptimizer', () => {
  it('is AdamW over the trainable tensors (biases and norms undecayed) by default', async () => {
    const peft = getPeftModel(new ToyModel(), toyMethod, { r: 2, targetModules: ['c_attn'] });
    const optimizer = await createTrainingOptimizer(peft, { lr: 0.01 });
    expect(optimizer).toBeInstanceOf(AdamW);
    expect(optimizer.lr).toBe(0.01);
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p);
    expect(new Set(optimizer.parameters())).toEqual(new Set(trainable));
    optimizer.dispose();
  });

  it("uses the technique's own optimizer when it registers one", async () => {
    const seen: unknown[] = [];
    const own = {
      ...toyMethod,
      name: 'toy-own-optimizer',
      createOptimizer: async (peft: PeftModel, options: { lr?: number }) => {
        seen.push(options.lr);
        return new AdamW(peft.namedParameters(), { lr: 42 });
      },
    };
    const peft = getPeftModel(new ToyModel(), own, { r: 2, targetModules: ['c_attn'] });
    const optimizer = await createTrainingOptimizer(peft, { lr: 0.5 });
    expect(seen).toEqual([0.5]);
    expect(optimizer.lr).toBe(42);
    optimizer.dispose();
  });

  it('needs an active adapter', async () => {
    await expect(createTrainingOptimizer(new PeftModel(new ToyModel()))).rejects.toThrow(/no active adapter/);
  });
});
