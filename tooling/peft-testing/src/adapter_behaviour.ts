// The behaviour every layer technique shares, checked on the toy model as Hugging Face PEFT's
// tests/testing_common.py checks it for each tuner: merging (_test_merge_layers, _test_safe_merge,
// _test_merge_layers_nan), disabling (_test_disable_adapter) and training (_test_training,
// test_only_params_are_updated).
import { AdamW, AdapterLayer, type PeftModel, Trainer } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { maxAbsDiff } from './max_abs_diff.js';
import { languageModelLoss, parameterValues, type ToyLM, tokenIds } from './toy_lm.js';

/** A toy model with one adapter that is not the identity, and what it is checked on. */
export interface AdaptedToyLM {
  model: ToyLM;
  peft: PeftModel<ToyLM>;
  ids: tf.Tensor;
  /** The model's output for `ids` before the adapter was added. */
  base: tf.Tensor;
  /** Start of the technique's tensor names (`"lora_"`). */
  tensorPrefix: string;
}

/**
 * Merged, unmerged and merge-and-unload outputs equal the adapter output; merged differs from the
 * base; merging is idempotent; safe and unsafe merges agree; the unloaded model is the plain model.
 */
export function expectMergingMatchesAdapter({ model, peft, ids, base, tensorPrefix }: AdaptedToyLM): void {
  const adapted = model.forward(ids);
  expect(maxAbsDiff(adapted, base)).toBeGreaterThan(1e-2);
  peft.merge();
  const merged = model.forward(ids);
  expect(maxAbsDiff(merged, adapted)).toBeLessThan(1e-4);
  expect(maxAbsDiff(merged, base)).toBeGreaterThan(1e-2);
  peft.merge(); // idempotent
  expect(maxAbsDiff(model.forward(ids), merged)).toBe(0);
  peft.unmerge();
  expect(maxAbsDiff(model.forward(ids), adapted)).toBeLessThan(1e-4);
  peft.merge({ safe: true });
  expect(maxAbsDiff(model.forward(ids), merged)).toBeLessThan(1e-6); // safe and unsafe agree
  const plain = peft.mergeAndUnload();
  expect(plain).toBe(model);
  expect([...plain.namedModules()].some(([, m]) => m instanceof AdapterLayer)).toBe(false);
  expect([...plain.namedParameters()].some(([n]) => n.includes(tensorPrefix))).toBe(false);
  expect(maxAbsDiff(plain.forward(ids), adapted)).toBeLessThan(1e-4);
}

/** Disabled gives exactly the base output, re-enabled the adapter output; disabling while merged unmerges first. */
export function expectDisablingGivesBase({ model, peft, ids, base }: AdaptedToyLM): void {
  const adapted = model.forward(ids);
  expect(maxAbsDiff(adapted, base)).toBeGreaterThan(1e-2);
  expect(
    maxAbsDiff(
      peft.withAdaptersDisabled(() => model.forward(ids)),
      base,
    ),
  ).toBe(0);
  expect(maxAbsDiff(model.forward(ids), adapted)).toBe(0);
  peft.disableAdapters();
  expect(maxAbsDiff(model.forward(ids), base)).toBe(0);
  peft.enableAdapters();
  expect(maxAbsDiff(model.forward(ids), adapted)).toBe(0);
  // disabling while merged unmerges first
  peft.merge();
  expect(
    maxAbsDiff(
      peft.withAdaptersDisabled(() => model.forward(ids)),
      base,
    ),
  ).toBeLessThan(1e-5);
  expect(maxAbsDiff(model.forward(ids), adapted)).toBeLessThan(1e-4);
}

/** With a NaN in the adapter of `layer` (a module path), a safe merge throws naming it and changes nothing. */
export function expectSafeMergeRefusesNaN(
  { model, peft, tensorPrefix }: Pick<AdaptedToyLM, 'model' | 'peft' | 'tensorPrefix'>,
  layer: string,
): void {
  const isBase = (n: string) => !n.includes(tensorPrefix);
  const before = parameterValues(model, isBase);
  const refused = new RegExp(`safe merge refused.*${layer.replaceAll('.', '\\.')}`);
  expect(() => peft.merge({ safe: true })).toThrow(refused);
  expect(parameterValues(model, isBase)).toEqual(before);
  expect(peft.adapterLayers().every(([, l]) => l.mergedAdapters.length === 0)).toBe(true);
}

/**
 * Three AdamW steps on the toy tokens change every adapter tensor (names containing `adapterTensor`)
 * and every `modules_to_save` copy, `count` of them together, and leave every other weight bit-identical.
 */
export async function expectOnlyAdapterTensorsTrain(
  { model, peft }: Pick<AdaptedToyLM, 'model' | 'peft'>,
  adapterTensor: string,
  count: number,
): Promise<void> {
  const isAdapter = (n: string) => n.includes(adapterTensor) || n.includes('.modules_to_save.');
  const before = parameterValues(peft);
  const ids = tokenIds();
  const trainer = new Trainer({
    module: peft,
    loss: (batch: tf.Tensor) => languageModelLoss(model, batch),
    optimizer: new AdamW(peft.namedParameters(), { lr: 0.05, weightDecay: 0 }),
  });
  for (let i = 0; i < 3; i++) await trainer.trainStep(ids);
  const after = parameterValues(peft);
  for (const [name, values] of after) {
    const changed = values.some((v, i) => v !== before.get(name)![i]);
    if (isAdapter(name)) expect(changed, name).toBe(true);
    else expect(values, name).toEqual(before.get(name)); // bit-identical
  }
  expect([...after.keys()].filter(isAdapter)).toHaveLength(count);
  trainer.dispose();
}

/**
 * The toy loss's gradients (`tf.variableGrads` over every trainable variable) are taken for exactly
 * the parameters whose names match `adapterTensor`.
 */
export function expectGradientsOnlyFor(
  { model, peft }: Pick<AdaptedToyLM, 'model' | 'peft'>,
  ids: tf.Tensor,
  adapterTensor: RegExp,
): void {
  const { grads, value } = tf.variableGrads(() => languageModelLoss(model, ids));
  const names = new Map([...peft.namedParameters()].map(([n, p]) => [p.variable.name, n]));
  const graded = Object.keys(grads).map((v) => names.get(v));
  expect(graded.sort()).toEqual(
    [...peft.namedParameters()]
      .filter(([n]) => adapterTensor.test(n))
      .map(([n]) => n)
      .sort(),
  );
  tf.dispose([value, ...Object.values(grads)]);
}

/** Shapes (`"8x24"`) of the frozen weight matrices: a kernel with such an output computes a weight gradient. */
export function frozenWeightShapes(peft: PeftModel): string[] {
  return [...peft.namedParameters()]
    .filter(([, p]) => !p.requiresGrad && p.shape.length === 2)
    .map(([, p]) => p.shape.join('x'));
}
