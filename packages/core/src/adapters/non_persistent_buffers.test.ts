// Non-persistent buffers (PyTorch's `register_buffer(..., persistent=False)`, PEFT's
// `BufferDict(persistent=False)`): state a technique rebuilds rather than saves, such as VeRA's
// projections with `save_projection=False`. They live in the model but not in its state dict, are not
// written to adapter files, and are not required (nor read) when loading one.
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ParameterDict } from '../nn/module.js';
import { Parameter } from '../nn/parameter.js';
import { PeftModel } from './peft_model.js';
import type { LayerPeftMethod } from './registry.js';
import { type ToyConfig, ToyModel, toyMethod } from './toy_method.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('non-persistent buffers', () => {
  it('are listed among the tensors but left out of the state dict and loadStateDict', () => {
    const dict = new ParameterDict({ buffers: true, persistent: false });
    dict.set('default', new Parameter(tf.ones([2])));
    expect([...dict.namedTensors()].map(([n]) => n)).toEqual(['default']);
    expect([...dict.namedStateTensors()]).toEqual([]);
    expect([...dict.stateDict().keys()]).toEqual([]);
    dict.loadStateDict(new Map()); // strict: nothing is missing
    expect(() => dict.loadStateDict(new Map([['default', tf.zeros([2])]]))).toThrow(
      /unexpected key "default"/,
    );
    expect(() => new ParameterDict({ persistent: false })).toThrow(/only buffers can be non-persistent/);
    dict.dispose();
  });

  /** The toy technique plus a shared buffer registered under `base_model.toy_shared.<adapter>`. */
  function sharedBufferMethod(persistent: boolean): LayerPeftMethod<ToyConfig> {
    return {
      ...toyMethod,
      name: `toy-shared-${persistent}`,
      prepare({ adapterName, shared }) {
        const dict = new ParameterDict({ buffers: true, persistent });
        dict.set(adapterName, new Parameter(tf.fill([3], 0.5)));
        shared.set('toy_shared', dict);
      },
    };
  }

  it('are not saved by adapterStateDict and not required (but ignored if present) by loadAdapterStateDict', () => {
    const saved = new PeftModel(new ToyModel());
    saved.addAdapter('default', sharedBufferMethod(true), { r: 2, targetModules: ['c_attn'] });
    const withBuffer = saved.adapterStateDict('default');
    expect(withBuffer.has('base_model.toy_shared')).toBe(true);

    const rebuilt = new PeftModel(new ToyModel());
    rebuilt.addAdapter('default', sharedBufferMethod(false), { r: 2, targetModules: ['c_attn'] });
    expect([...rebuilt.namedTensors()].map(([n]) => n)).toContain('base_model.toy_shared.default');
    const keys = [...rebuilt.adapterStateDict('default').keys()];
    expect(keys).toEqual([...withBuffer.keys()].filter((k) => k !== 'base_model.toy_shared'));

    const lambdas = new Map([...withBuffer].filter(([k]) => k !== 'base_model.toy_shared'));
    rebuilt.loadAdapterStateDict('default', lambdas);
    // A file that holds the buffer anyway: the tensor is ignored, the rebuilt value kept.
    const other = new Map([['base_model.toy_shared', tf.fill([3], 9)], ...lambdas]);
    rebuilt.loadAdapterStateDict('default', other);
    const buffer = [...rebuilt.namedTensors()].find(([n]) => n === 'base_model.toy_shared.default')![1];
    expect([...buffer.value.dataSync()]).toEqual([0.5, 0.5, 0.5]);
    expect(() =>
      rebuilt.loadAdapterStateDict('default', new Map([...lambdas, ['base_model.nope', tf.zeros([1])]])),
    ).toThrow(/unexpected tensor "base_model.nope"/);
    saved.dispose();
    rebuilt.dispose();
  });
});
