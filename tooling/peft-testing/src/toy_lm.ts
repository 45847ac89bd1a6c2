// A tiny language model built from core's modules with GPT-2's module names and layers of several
// sizes, for the technique packages' unit tests: `transformer.wte`, `transformer.h.{i}.attn.c_attn`
// (d→3d), `attn.c_proj` (d→d), `mlp.c_fc` (d→4d), `mlp.c_proj` (4d→d), all Conv1D layout as GPT-2,
// a LLaMA-style Linear-layout `mlp.down_proj` (d→d), and `lm_head`.
import { Embedding, LayerNorm, Linear, Module, ModuleDict, manualSeed } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

interface Layer {
  forward(x: tf.Tensor): tf.Tensor;
}

/** Looked up at call time: adapters replace children in place. */
function child(parent: Module, name: string): Layer {
  return parent.getSubmodule(name) as unknown as Layer;
}

class Attn extends Module {
  constructor(d: number) {
    super();
    this.registerModule('c_attn', new Linear({ inFeatures: d, outFeatures: 3 * d, fanInFanOut: true }));
    this.registerModule('c_proj', new Linear({ inFeatures: d, outFeatures: d, fanInFanOut: true }));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [q, k, v] = tf.split(child(this, 'c_attn').forward(x), 3, -1) as [
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
      ];
      return child(this, 'c_proj').forward(tf.mul(tf.sigmoid(tf.mul(q, k)), v));
    });
  }
}

class Mlp extends Module {
  constructor(d: number) {
    super();
    this.registerModule('c_fc', new Linear({ inFeatures: d, outFeatures: 4 * d, fanInFanOut: true }));
    this.registerModule('c_proj', new Linear({ inFeatures: 4 * d, outFeatures: d, fanInFanOut: true }));
    this.registerModule('down_proj', new Linear({ inFeatures: d, outFeatures: d, bias: false }));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = child(this, 'c_proj').forward(tf.tanh(child(this, 'c_fc').forward(x)));
      return child(this, 'down_proj').forward(h);
    });
  }
}

class Block extends Module {
  constructor(d: number) {
    super();
    this.registerModule('ln_1', new LayerNorm({ dim: d }));
    this.registerModule('attn', new Attn(d));
    this.registerModule('mlp', new Mlp(d));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = tf.add(x, child(this, 'attn').forward(child(this, 'ln_1').forward(x)));
      return tf.add(h, child(this, 'mlp').forward(h));
    });
  }
}

/** `forward(ids [batch, length] int32) → logits [batch, length, vocab]`. */
export class ToyLM extends Module {
  readonly modelType = 'gpt2';
  readonly d: number;
  readonly vocab: number;
  readonly layers: number;

  constructor(options: { d?: number; layers?: number; vocab?: number } = {}) {
    super();
    this.d = options.d ?? 8;
    this.vocab = options.vocab ?? 13;
    this.layers = options.layers ?? 2;
    const transformer = this.registerModule('transformer', new ModuleDict());
    transformer.set('wte', new Embedding({ numEmbeddings: this.vocab, embeddingDim: this.d }));
    const blocks = new ModuleDict<Block>();
    for (let i = 0; i < this.layers; i++) blocks.set(String(i), new Block(this.d));
    transformer.set('h', blocks);
    this.registerModule('lm_head', new Linear({ inFeatures: this.d, outFeatures: this.vocab, bias: false }));
  }

  forward(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = child(this, 'transformer.wte').forward(ids);
      for (let i = 0; i < this.layers; i++) h = child(this, `transformer.h.${i}`).forward(h);
      return child(this, 'lm_head').forward(h);
    });
  }
}

/** Mean next-token cross-entropy of `ids` under `model`. */
export function languageModelLoss(model: ToyLM, ids: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const [batch, length] = ids.shape as [number, number];
    const logits = model.forward(tf.slice(ids, [0, 0], [batch, length - 1]));
    const targets = tf.oneHot(tf.reshape(tf.slice(ids, [0, 1], [batch, length - 1]), [-1]), model.vocab);
    return tf.losses.softmaxCrossEntropy(targets, tf.reshape(logits, [-1, model.vocab])) as tf.Scalar;
  });
}

/** Fixed token ids `[2, 6]`. */
export function tokenIds(vocab = 13): tf.Tensor {
  return tf.tensor2d(
    [
      [1, 5, 2, 9, 12, 3],
      [7, 0, 4, 11, 6, 8],
    ].map((row) => row.map((id) => id % vocab)),
    undefined,
    'int32',
  );
}

/** A copy of every parameter's values by dotted name, those `filter` keeps. */
export function parameterValues(
  model: Module,
  filter: (name: string) => boolean = () => true,
): Map<string, tf.TypedArray> {
  return new Map(
    [...model.namedParameters()].filter(([n]) => filter(n)).map(([n, p]) => [n, p.value.dataSync().slice()]),
  );
}

/**
 * A fresh `ToyLM` (drawn from another seed) holding `model`'s base weights: adapter layers and
 * `modules_to_save` copies unwrapped, the technique's tensors (named `tensorPrefix…`) left out. The
 * model to load a saved adapter into and compare with the original.
 */
export function toyLMWithBaseOf(model: ToyLM, tensorPrefix: string): ToyLM {
  manualSeed(1234); // a different seed: the loaded values must win over the fresh init
  const fresh = new ToyLM().eval();
  fresh.loadStateDict(
    new Map(
      [...model.namedParameters()]
        .filter(([n]) => !n.includes(tensorPrefix) && !n.includes('modules_to_save'))
        .map(([n, p]) => [n.replace('.base_layer', '').replace('.original_module', ''), p.value]),
    ),
  );
  return fresh;
}
