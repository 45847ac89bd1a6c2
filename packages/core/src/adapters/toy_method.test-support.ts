// A minimal low-rank technique and a GPT-2-shaped toy model, used by the core tests to exercise the
// adapter hooks exactly as a technique package would (no core change needed to add a technique).
import * as tf from '@tensorflow/tfjs-core';
import { normal } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module, ModuleDict } from '../nn/module.js';
import { AdapterLayer } from './adapter_layer.js';
import type { TargetModules } from './find_targets.js';
import type { LayerPeftMethod } from './registry.js';

export interface ToyConfig {
  r: number;
  targetModules: TargetModules;
  layersToTransform?: number[] | null;
  /** Make the adapter fail on the n-th layer it is added to (to test that nothing is half-applied). */
  failOnLayer?: number;
}

let added = 0;

export class ToyLowRankLayer extends AdapterLayer {
  readonly methodName = 'toy';
  readonly down = this.registerModule('toy_down', new ModuleDict<Linear>());
  readonly up = this.registerModule('toy_up', new ModuleDict<Linear>());

  addAdapter(name: string, config: unknown): void {
    const { r, failOnLayer } = config as ToyConfig;
    if (failOnLayer !== undefined && ++added === failOnLayer) throw new Error('toy: planned failure');
    const { inFeatures, outFeatures } = this.baseLayer;
    this.down.set(
      name,
      new Linear({ inFeatures, outFeatures: r, bias: false, weight: normal([r, inFeatures], 0.5) }),
    );
    this.up.set(
      name,
      new Linear({ inFeatures: r, outFeatures, bias: false, weight: normal([outFeatures, r], 0.5) }),
    );
  }

  removeAdapter(name: string): void {
    this.down.delete(name)?.dispose();
    this.up.delete(name)?.dispose();
  }

  adapterNames(): string[] {
    return this.down.keys();
  }

  protected adapterOutput(name: string, x: tf.Tensor): tf.Tensor {
    return this.up.get(name)!.forward(this.down.get(name)!.forward(x));
  }

  deltaWeight(name: string): tf.Tensor {
    return tf.matMul(this.up.get(name)!.weight.value, this.down.get(name)!.weight.value);
  }
}

export function resetToyFailures(): void {
  added = 0;
}

export const toyMethod: LayerPeftMethod<ToyConfig> = {
  kind: 'layer',
  name: 'toy',
  peftType: 'TOY',
  tensorPrefix: 'toy_',
  config: {
    parse: (json) => json as ToyConfig,
    toJson: (config) => ({ ...config }),
  },
  targetSelection: (config) => ({
    targetModules: config.targetModules,
    layersToTransform: config.layersToTransform ?? null,
  }),
  createLayer: (base) => new ToyLowRankLayer(base),
};

class ToyBlock extends Module {
  readonly attn: Module;
  readonly mlp: Module;
  constructor(d: number) {
    super();
    class Attn extends Module {
      readonly c_attn = this.registerModule(
        'c_attn',
        new Linear({ inFeatures: d, outFeatures: 3 * d, fanInFanOut: true }),
      );
      readonly c_proj = this.registerModule(
        'c_proj',
        new Linear({ inFeatures: d, outFeatures: d, fanInFanOut: true }),
      );
    }
    class Mlp extends Module {
      readonly c_fc = this.registerModule(
        'c_fc',
        new Linear({ inFeatures: d, outFeatures: 2 * d, fanInFanOut: true }),
      );
      readonly c_proj = this.registerModule(
        'c_proj',
        new Linear({ inFeatures: 2 * d, outFeatures: d, fanInFanOut: true }),
      );
    }
    this.attn = this.registerModule('attn', new Attn());
    this.mlp = this.registerModule('mlp', new Mlp());
  }

  forward(x: tf.Tensor): tf.Tensor {
    const attn = this.attn.getSubmodule('c_attn') as Linear;
    const proj = this.attn.getSubmodule('c_proj') as Linear;
    const fc = this.mlp.getSubmodule('c_fc') as Linear;
    const down = this.mlp.getSubmodule('c_proj') as Linear;
    return tf.tidy(() => {
      const [q, k, v] = tf.split(attn.forward(x), 3, -1) as [tf.Tensor, tf.Tensor, tf.Tensor];
      const h = tf.add(x, proj.forward(tf.mul(tf.tanh(tf.mul(q, k)), v)));
      return tf.add(h, down.forward(tf.tanh(fc.forward(h))));
    });
  }
}

/** GPT-2-shaped names: `transformer.h.{i}.attn.c_attn` (Conv1D layout), `lm_head` (Linear layout). */
export class ToyModel extends Module {
  readonly modelType = 'toy';
  readonly blocks: ModuleDict<ToyBlock>;
  constructor(
    readonly d = 8,
    layers = 2,
    vocab = 11,
  ) {
    super();
    const transformer = this.registerModule('transformer', new ModuleDict());
    this.blocks = new ModuleDict<ToyBlock>();
    transformer.set('h', this.blocks);
    for (let i = 0; i < layers; i++) this.blocks.set(String(i), new ToyBlock(d));
    this.registerModule('lm_head', new Linear({ inFeatures: d, outFeatures: vocab, bias: false }));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (const key of this.blocks.keys()) h = this.blocks.get(key)!.forward(h);
      return (this.getSubmodule('lm_head') as Linear).forward(h);
    });
  }
}
