// frozenMatMul and LoraFaLayer: LoRA's outputs bit for bit, LoRA's gradient for B and x, A frozen.
import '@tensorflow/tfjs-backend-cpu';
import { Linear, manualSeed, nextSeed } from '@peft/core';
import { LoraLayer } from '@peft/lora';
import { maxAbsDiff } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { frozenMatMul, LoraFaLayer } from './layer.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomTensor(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

describe('frozenMatMul', () => {
  for (const transposeB of [true, false]) {
    it(`computes x·W${transposeB ? 'ᵀ' : ''} and tfjs's gradient for x, keeping nothing (transposeB ${transposeB})`, () => {
      const x = randomTensor([2, 3, 5], 1);
      const w = randomTensor(transposeB ? [4, 5] : [5, 4], 2);
      const weights = randomTensor([6, 4], 3); // reduces the output to a scalar, every element weighted
      const ours = (t: tf.Tensor) => tf.sum(tf.mul(frozenMatMul(t, w, transposeB), weights));
      const reference = (t: tf.Tensor) =>
        tf.sum(tf.mul(tf.matMul(tf.reshape(t, [6, 5]), w, false, transposeB), weights));
      expect(maxAbsDiff(ours(x), reference(x))).toBe(0);
      expect(maxAbsDiff(tf.grad(ours)(x), tf.grad(reference)(x))).toBe(0);
      // The tape keeps no handle on x's data; tfjs's own MatMul (through the Reshape) does.
      const keptOfX = (f: (t: tf.Tensor) => tf.Tensor) => {
        const xv = tf.variable(x.clone());
        let kept = -1;
        tf.variableGrads(() => {
          const loss = f(xv) as tf.Scalar;
          const tape = (tf.engine() as unknown as { state: { activeTape: { saved?: tf.Tensor[] }[] } }).state
            .activeTape;
          const id = (xv as unknown as { dataId: object }).dataId;
          kept = tape
            .flatMap((node) => node.saved ?? [])
            .filter((t) => (t as unknown as { dataId: object }).dataId === id).length;
          return loss;
        }, [xv]);
        xv.dispose();
        return kept;
      };
      expect(keptOfX(ours)).toBe(0);
      expect(keptOfX(reference)).toBeGreaterThan(0);
    });
  }

  it("with dropout: tf.dropout's mask for the same seed, rebuilt in the backward pass", () => {
    const x = randomTensor([4, 6], 4);
    const w = randomTensor([3, 6], 5);
    const weights = randomTensor([4, 3], 6);
    const ours = (t: tf.Tensor) => tf.sum(tf.mul(frozenMatMul(t, w, true, { p: 0.4, seed: 77 }), weights));
    const reference = (t: tf.Tensor) =>
      tf.sum(tf.mul(tf.matMul(tf.dropout(t, 0.4, undefined, 77), w, false, true), weights));
    expect(maxAbsDiff(ours(x), reference(x))).toBe(0);
    const grad = tf.grad(ours)(x);
    expect(maxAbsDiff(grad, tf.grad(reference)(x))).toBe(0);
    // Some inputs are dropped: their gradient is exactly zero.
    expect(Array.from(grad.dataSync()).filter((v) => v === 0).length).toBeGreaterThan(0);
  });
});

/** A LoRA layer and a LoRA-FA layer over copies of one base layer, with identical adapter tensors. */
function twins(options: { fanInFanOut: boolean; loraBias?: boolean; dropout?: number }) {
  const make = (Layer: typeof LoraLayer) => {
    manualSeed(11);
    const base = new Linear({ inFeatures: 6, outFeatures: 5, fanInFanOut: options.fanInFanOut });
    base.weight.requiresGrad = false;
    base.bias!.requiresGrad = false;
    const layer = new Layer(base);
    // init false: B is not zero, so the adapter matters.
    layer.addAdapter('default', {
      r: 3,
      alpha: 6,
      initLoraWeights: false,
      loraBias: options.loraBias ?? false,
      dropout: options.dropout ?? 0,
    });
    layer.setActiveAdapters(['default']);
    layer.setAdapterTrainable('default', true);
    return layer;
  };
  return { lora: make(LoraLayer), fa: make(LoraFaLayer) as LoraFaLayer };
}

function trainableOf(layer: LoraLayer): [string, tf.Variable][] {
  return [...layer.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n, p]) => [n, p.variable]);
}

describe('LoraFaLayer', () => {
  it('is a LoraLayer of its own technique, with A frozen and B trainable', () => {
    const { fa } = twins({ fanInFanOut: false, loraBias: true });
    expect(fa).toBeInstanceOf(LoraLayer);
    expect(fa.methodName).toBe('lora-fa');
    expect(trainableOf(fa).map(([n]) => n)).toEqual(['lora_B.default.weight', 'lora_B.default.bias']);
    fa.setAdapterTrainable('default', false);
    expect(trainableOf(fa)).toEqual([]);
  });

  for (const fanInFanOut of [false, true]) {
    for (const loraBias of [false, true]) {
      it(`gives LoRA's output and LoRA's gradients of B and x, bit for bit (fanInFanOut ${fanInFanOut}, loraBias ${loraBias})`, () => {
        const { lora, fa } = twins({ fanInFanOut, loraBias });
        const x = randomTensor([2, 4, 6], 8);
        const weights = randomTensor([2, 4, 5], 9);
        const run = (layer: LoraLayer) => {
          const vars = [...trainableOf(fa).map(([n]) => n)].map(
            (name) => [...layer.namedParameters()].find(([n]) => n === name)![1].variable,
          );
          const input = tf.variable(x.clone());
          const { value, grads } = tf.variableGrads(
            () => tf.sum(tf.mul(layer.forward(input), weights)) as tf.Scalar,
            [...vars, input],
          );
          return {
            output: layer.forward(x),
            value,
            grads: [...vars, input].map((v) => grads[v.name]!),
          };
        };
        const a = run(lora);
        const b = run(fa);
        expect(maxAbsDiff(a.output, b.output)).toBe(0);
        expect(maxAbsDiff(a.value, b.value)).toBe(0);
        expect(b.grads).toHaveLength(a.grads.length);
        for (const [i, g] of a.grads.entries()) expect(maxAbsDiff(g, b.grads[i]!)).toBe(0);
      });
    }
  }

  it("draws LoRA's dropout masks (same seeds) and gives LoRA's gradients under dropout", () => {
    const { lora, fa } = twins({ fanInFanOut: true, dropout: 0.5 });
    const x = randomTensor([3, 6], 10);
    const run = (layer: LoraLayer) => {
      manualSeed(5);
      const b = [...layer.namedParameters()].find(([n]) => n === 'lora_B.default.weight')![1].variable;
      const input = tf.variable(x.clone());
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(layer.forward(input))) as tf.Scalar,
        [b, input],
      );
      return { value, gb: grads[b.name]!, gx: grads[input.name]!, next: nextSeed() };
    };
    const a = run(lora);
    const b = run(fa);
    expect(b.next).toBe(a.next); // the same number of seeds drawn
    expect(maxAbsDiff(a.value, b.value)).toBe(0);
    expect(maxAbsDiff(a.gb, b.gb)).toBe(0);
    expect(maxAbsDiff(a.gx, b.gx)).toBe(0);
    // In eval mode no mask (and no seed) is drawn.
    manualSeed(5);
    const first = nextSeed();
    fa.eval();
    manualSeed(5);
    const y = fa.forward(x);
    expect(nextSeed()).toBe(first);
    lora.eval();
    expect(maxAbsDiff(y, lora.forward(x))).toBe(0);
  });

  it("falls back to LoRA's autodiff when A or the base is made trainable (A then gets LoRA's gradient)", () => {
    const { lora, fa } = twins({ fanInFanOut: false });
    const x = randomTensor([4, 6], 12);
    for (const layer of [lora, fa]) {
      layer.loraA.get('default')!.weight.requiresGrad = true;
      layer.baseLayer.bias!.requiresGrad = true;
    }
    const grads = (layer: LoraLayer) => {
      const vars = [...layer.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p.variable);
      const { grads: g } = tf.variableGrads(() => tf.sum(tf.square(layer.forward(x))) as tf.Scalar, vars);
      return vars.map((v) => g[v.name]!);
    };
    const a = grads(lora);
    const b = grads(fa);
    expect(b).toHaveLength(3); // the base bias, A and B
    for (const [i, g] of a.entries()) expect(maxAbsDiff(g, b[i]!)).toBe(0);
  });

  it('disabled or merged, computes the base layer (merged: with the delta), as LoRA', () => {
    const { lora, fa } = twins({ fanInFanOut: true });
    const x = randomTensor([2, 6], 13);
    const base = fa.baseLayer.forward(x);
    fa.setDisabled(true);
    expect(maxAbsDiff(fa.forward(x), base)).toBe(0);
    fa.setDisabled(false);
    const adapted = fa.forward(x);
    fa.merge();
    lora.merge();
    expect(maxAbsDiff(fa.forward(x), lora.forward(x))).toBe(0);
    expect(maxAbsDiff(fa.forward(x), adapted)).toBeLessThan(1e-6);
    fa.unmerge();
    expect(maxAbsDiff(fa.forward(x), adapted)).toBeLessThan(1e-6);
  });
});
