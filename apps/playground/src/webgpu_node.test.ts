// The playground's training step (the models package's GPT-2, a technique's adapter, the causal-LM
// loss) on WebGPU in Node, through Dawn (the `webgpu` package) over a CPU Vulkan driver (Mesa
// lavapipe or SwiftShader): its loss and its gradients wrt every trainable tensor agree with WASM.
// Core's cross_backend test checks the ops one by one; this checks the packages together.
import { getPeftMethod, getPeftModel, initBackend, manualSeed } from '@peft/core';
import { causalLMLoss, createModel } from '@peft/models';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';

/** Relative error: max|a - b| / max|b|. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

const TOLERANCE = 1e-4;
const MODEL = {
  model_type: 'gpt2',
  vocab_size: 256,
  n_embd: 16,
  n_layer: 2,
  n_head: 2,
  n_positions: 32,
  embd_pdrop: 0,
  resid_pdrop: 0,
  attn_pdrop: 0,
};
const BATCH = [
  Array.from('the cat sat on it', (c) => c.charCodeAt(0)).slice(0, 9),
  Array.from('a whale, a ship!', (c) => c.charCodeAt(0)).slice(0, 9),
];
const TECHNIQUES: Record<string, Record<string, unknown>> = {
  // init_lora_weights false: B is random, not zero, so that A's gradient is not zero either.
  lora: {
    peft_type: 'LORA',
    r: 4,
    lora_alpha: 8,
    init_lora_weights: false,
    target_modules: ['c_attn', 'c_fc'],
  },
  prefix: { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3, prefix_projection: false },
};

interface Step {
  loss: number;
  gradients: Map<string, Float32Array>;
  /** Every tensor of the model with its adapter, to start the other backend from the same numbers. */
  state: Map<string, { shape: number[]; values: Float32Array }>;
}

/** One forward and backward pass of the causal-LM loss on the current backend. */
async function step(technique: string, state?: Step['state']): Promise<Step> {
  await import(`@peft/${technique}`);
  manualSeed(7);
  const model = createModel(MODEL);
  const method = getPeftMethod(technique);
  const peft = getPeftModel(model, method, method.config.parse(TECHNIQUES[technique]), { modelType: 'gpt2' });
  try {
    if (state) {
      const tensors = new Map([...state].map(([name, t]) => [name, tf.tensor(t.values, t.shape)]));
      peft.loadStateDict(tensors);
      tf.dispose([...tensors.values()]);
    }
    peft.eval();
    const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad);
    const { value, grads } = tf.variableGrads(
      () => causalLMLoss(model, BATCH),
      trainable.map(([, p]) => p.value),
    );
    const gradients = new Map<string, Float32Array>();
    for (const [name, parameter] of trainable) {
      gradients.set(name, (await grads[parameter.value.name]!.data()) as Float32Array);
    }
    const loss = (await value.data())[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    const saved = new Map<string, { shape: number[]; values: Float32Array }>();
    for (const [name, tensor] of peft.stateDict()) {
      saved.set(name, { shape: tensor.shape, values: (await tensor.data()) as Float32Array });
    }
    return { loss, gradients, state: saved };
  } finally {
    peft.dispose();
  }
}

// initBackend says why WebGPU cannot run here (no `webgpu` package, no Vulkan driver, ...).
const skipReason = await initBackend({ backend: 'webgpu' }).then(
  () => undefined,
  (error: Error) => error.message,
);
if (skipReason) console.warn(`SKIPPED playground training step on webgpu vs wasm: ${skipReason}`);

afterAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe.skipIf(skipReason !== undefined)('a training step on WebGPU (Dawn in Node) agrees with WASM', () => {
  for (const technique of Object.keys(TECHNIQUES)) {
    it(`${technique}: loss and gradients of every trainable tensor`, async () => {
      await initBackend({ backend: 'wasm' });
      const reference = await step(technique);
      const report = await initBackend({ backend: 'webgpu' });
      expect(report.backend).toBe('webgpu');
      const actual = await step(technique, reference.state);
      expect(tf.getBackend()).toBe('webgpu');

      expect(Math.abs(actual.loss - reference.loss) / Math.abs(reference.loss)).toBeLessThan(TOLERANCE);
      expect([...actual.gradients.keys()]).toEqual([...reference.gradients.keys()]);
      expect(reference.gradients.size).toBeGreaterThan(0);
      for (const [name, expected] of reference.gradients) {
        expect(Math.max(...Array.from(expected, Math.abs)), `${name} is not all zeros`).toBeGreaterThan(1e-6);
        expect(
          relativeError(actual.gradients.get(name)!, expected),
          `${name} (${report.reason})`,
        ).toBeLessThan(TOLERANCE);
      }
    });
  }
});
