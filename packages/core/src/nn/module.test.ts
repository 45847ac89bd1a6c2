import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { freezeParameters, unfreezeParameters } from './freeze.js';
import { Linear } from './linear.js';
import { Module, ModuleDict, ParameterDict } from './module.js';
import { Parameter } from './parameter.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

class Block extends Module {
  readonly fc = this.registerModule('fc', new Linear({ inFeatures: 3, outFeatures: 4 }));
  readonly head = this.registerModule('head', new Linear({ inFeatures: 4, outFeatures: 2, bias: false }));
}

class Net extends Module {
  readonly layers = this.registerModule('layers', new ModuleDict<Block>());
  readonly scale = this.registerParameter('scale', new Parameter(tf.ones([2])));
  constructor() {
    super();
    this.layers.set('0', new Block());
    this.layers.set('1', new Block());
  }
}

describe('Module', () => {
  it('lists modules and parameters with dotted names, depth first', () => {
    const net = new Net();
    expect([...net.namedModules()].map(([n]) => n)).toEqual([
      '',
      'layers',
      'layers.0',
      'layers.0.fc',
      'layers.0.head',
      'layers.1',
      'layers.1.fc',
      'layers.1.head',
    ]);
    expect([...net.namedParameters()].map(([n]) => n)).toEqual([
      'scale',
      'layers.0.fc.weight',
      'layers.0.fc.bias',
      'layers.0.head.weight',
      'layers.1.fc.weight',
      'layers.1.fc.bias',
      'layers.1.head.weight',
    ]);
    net.dispose();
  });

  it('gets and replaces submodules by dotted path', () => {
    const net = new Net();
    const replacement = new Linear({ inFeatures: 3, outFeatures: 4 });
    const old = net.setSubmodule('layers.1.fc', replacement);
    expect(net.getSubmodule('layers.1.fc')).toBe(replacement);
    expect(old).toBeInstanceOf(Linear);
    expect(() => net.getSubmodule('layers.2.fc')).toThrow('no submodule "layers.2.fc" (missing "2")');
    expect(() => net.setSubmodule('layers.0.nope', replacement)).toThrow(/no submodule/);
    old.dispose();
    net.dispose();
  });

  it('rejects reserved and dotted names', () => {
    const dict = new ModuleDict();
    expect(() => dict.set('__proto__', new Linear({ inFeatures: 1, outFeatures: 1 }))).toThrow(
      /invalid module name/,
    );
    expect(() => dict.set('a.b', new Linear({ inFeatures: 1, outFeatures: 1 }))).toThrow(
      /invalid module name/,
    );
  });

  it('lists a tied parameter once and disposes it once', () => {
    const shared = new Parameter(tf.ones([4, 3]));
    class Tied extends Module {
      readonly a = this.registerModule(
        'a',
        new Linear({ inFeatures: 3, outFeatures: 4, tiedWeight: shared, bias: false }),
      );
      readonly b = this.registerModule(
        'b',
        new Linear({ inFeatures: 3, outFeatures: 4, tiedWeight: shared, bias: false }),
      );
    }
    const tied = new Tied();
    expect([...tied.namedParameters()].map(([n]) => n)).toEqual(['a.weight']);
    tied.dispose();
    expect(shared.isDisposed).toBe(true);
  });

  it('freezes and unfreezes by names, regex and predicate', () => {
    const net = new Net();
    expect(freezeParameters(net)).toBe(7);
    expect(unfreezeParameters(net, /layers\.\d\.fc\..*/)).toBe(4);
    expect(unfreezeParameters(net, ['scale'])).toBe(1);
    expect(freezeParameters(net, (name) => name.endsWith('.bias'))).toBe(2);
    expect([...net.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n)).toEqual([
      'scale',
      'layers.0.fc.weight',
      'layers.1.fc.weight',
    ]);
    // a regex must match the whole name
    expect(unfreezeParameters(net, /fc/)).toBe(0);
    net.dispose();
  });

  it('round-trips a state dict and refuses a bad one without changing anything', () => {
    const a = new Net();
    const b = new Net();
    const state = new Map([...a.stateDict()].map(([k, v]) => [k, tf.clone(v)]));
    b.loadStateDict(state);
    for (const [name, value] of b.stateDict()) {
      expect(value.dataSync(), name).toEqual(state.get(name)!.dataSync());
    }
    const c = new Net();
    const before = new Map([...c.stateDict()].map(([k, v]) => [k, v.dataSync().slice()]));
    const bad = new Map<string, tf.Tensor>(state);
    bad.set('layers.0.fc.weight', tf.zeros([3, 4]));
    bad.delete('scale');
    bad.set('extra', tf.zeros([1]));
    expect(() => c.loadStateDict(bad)).toThrow(
      /3 problem\(s\): "layers\.0\.fc\.weight": shape \[3,4\] does not match the model's \[4,3\]; unexpected key "extra"; missing key "scale"/,
    );
    for (const [name, value] of c.stateDict()) expect(value.dataSync(), name).toEqual(before.get(name));
    // non-strict ignores unknown and missing keys but still checks shapes
    c.loadStateDict(
      new Map([
        ['scale', tf.fill([2], 3)],
        ['nope', tf.zeros([1])],
      ]),
      { strict: false },
    );
    expect([...c.scale.value.dataSync()]).toEqual([3, 3]);
    for (const m of [a, b, c]) m.dispose();
  });

  it('keeps buffers in the state dict but not among parameters', () => {
    const dict = new ParameterDict({ buffers: true });
    dict.set('default', new Parameter(tf.ones([2, 2]), { requiresGrad: true }));
    expect([...dict.namedParameters()]).toEqual([]);
    expect([...dict.namedBuffers()].map(([n, p]) => [n, p.requiresGrad])).toEqual([['default', false]]);
    expect([...dict.stateDict().keys()]).toEqual(['default']);
    dict.dispose();
  });

  it('propagates train/eval mode', () => {
    const net = new Net();
    net.eval();
    expect([...net.namedModules()].every(([, m]) => !m.training)).toBe(true);
    net.train();
    expect(net.getSubmodule('layers.1.head').training).toBe(true);
    net.dispose();
  });
});
