import { addKeepingNothing, Dropout, type Embedding, Module, ModuleDict } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { ACTIVATIONS, type Activation } from '../activations.js';
import {
  type AttentionContext,
  type AttentionInfo,
  CausalLMBase,
  keepLast,
  mergeHeads,
  splitHeads,
} from '../causal_lm.js';
import { childLayer } from '../layer.js';
import { type ModelOptions, ModuleBuilder } from '../weights.js';
import { type GPT2Config, gpt2Config } from './config.js';

/** `attn`: Conv1D `c_attn` to q, k, v; causal attention; Conv1D `c_proj`. */
export class GPT2Attention extends Module {
  readonly #heads: number;
  readonly #headDim: number;
  readonly #scale: number;
  readonly #attentionDropout: number;

  constructor(config: GPT2Config, build: ModuleBuilder, name: string, layerIndex: number) {
    super();
    const dim = config.n_embd;
    this.#heads = config.n_head;
    this.#headDim = dim / config.n_head;
    this.#attentionDropout = config.attn_pdrop;
    this.#scale =
      (config.scale_attn_weights ? 1 / Math.sqrt(this.#headDim) : 1) /
      (config.scale_attn_by_inverse_layer_idx ? layerIndex + 1 : 1);
    const projStd = config.initializer_range / Math.sqrt(2 * config.n_layer);
    this.registerModule(
      'c_attn',
      build.linear(`${name}.c_attn`, {
        inFeatures: dim,
        outFeatures: 3 * dim,
        bias: true,
        fanInFanOut: true,
      }),
    );
    this.registerModule(
      'c_proj',
      build.linear(`${name}.c_proj`, {
        inFeatures: dim,
        outFeatures: dim,
        bias: true,
        fanInFanOut: true,
        std: projStd,
      }),
    );
    this.registerModule('resid_dropout', new Dropout(config.resid_pdrop));
  }

  forward(x: tf.Tensor, context: AttentionContext, layerIndex: number): tf.Tensor {
    return tf.tidy(() => {
      const [batch, length, dim] = x.shape as [number, number, number];
      const qkv = childLayer(this, 'c_attn').forward(x);
      const dropout = this.training ? this.#attentionDropout : 0;
      // Plain causal self-attention reads q, k, v in place where core's kernels can.
      const packed = context.attendPacked(qkv, this.#heads, { scale: this.#scale, dropout });
      if (packed)
        return childLayer(this, 'resid_dropout').forward(childLayer(this, 'c_proj').forward(packed));
      // Split on the last axis of a 2-D view: the fast path (a middle-axis split is per element).
      const [q, k, v] = tf.split(tf.reshape(qkv, [batch * length, 3 * dim]), 3, 1) as [
        tf.Tensor,
        tf.Tensor,
        tf.Tensor,
      ];
      const heads = (t: tf.Tensor) =>
        splitHeads(tf.reshape(t, [batch, length, dim]), this.#heads, this.#headDim);
      const out = context.attend(layerIndex, heads(q), heads(k), heads(v), { scale: this.#scale, dropout });
      const projected = childLayer(this, 'c_proj').forward(mergeHeads(out));
      return childLayer(this, 'resid_dropout').forward(projected);
    });
  }
}

/** `mlp`: Conv1D `c_fc`, activation, Conv1D `c_proj`, dropout. */
export class GPT2MLP extends Module {
  readonly #act: Activation;

  constructor(config: GPT2Config, build: ModuleBuilder, name: string) {
    super();
    const dim = config.n_embd;
    const inner = config.n_inner ?? 4 * dim;
    this.#act = ACTIVATIONS[config.activation_function]!;
    const projStd = config.initializer_range / Math.sqrt(2 * config.n_layer);
    this.registerModule(
      'c_fc',
      build.linear(`${name}.c_fc`, { inFeatures: dim, outFeatures: inner, bias: true, fanInFanOut: true }),
    );
    this.registerModule(
      'c_proj',
      build.linear(`${name}.c_proj`, {
        inFeatures: inner,
        outFeatures: dim,
        bias: true,
        fanInFanOut: true,
        std: projStd,
      }),
    );
    this.registerModule('dropout', new Dropout(config.resid_pdrop));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const hidden = this.#act(childLayer(this, 'c_fc').forward(x));
      return childLayer(this, 'dropout').forward(childLayer(this, 'c_proj').forward(hidden));
    });
  }
}

/** `h.{i}`: pre-norm attention and MLP with residuals. */
export class GPT2Block extends Module {
  readonly layerIndex: number;

  constructor(config: GPT2Config, build: ModuleBuilder, name: string, layerIndex: number) {
    super();
    this.layerIndex = layerIndex;
    this.registerModule('ln_1', build.layerNorm(`${name}.ln_1`, config.n_embd, config.layer_norm_epsilon));
    this.registerModule('attn', new GPT2Attention(config, build, `${name}.attn`, layerIndex));
    this.registerModule('ln_2', build.layerNorm(`${name}.ln_2`, config.n_embd, config.layer_norm_epsilon));
    this.registerModule('mlp', new GPT2MLP(config, build, `${name}.mlp`));
  }

  forward(x: tf.Tensor, context: AttentionContext): tf.Tensor {
    return tf.tidy(() => {
      const attn = this.getSubmodule('attn') as GPT2Attention;
      const h = addKeepingNothing(
        x,
        attn.forward(childLayer(this, 'ln_1').forward(x), context, this.layerIndex),
      );
      return addKeepingNothing(h, childLayer(this, 'mlp').forward(childLayer(this, 'ln_2').forward(h)));
    });
  }
}

/** `transformer`: token and position embeddings, the blocks, the final norm. */
export class GPT2Model extends Module {
  readonly config: GPT2Config;

  constructor(config: GPT2Config, build: ModuleBuilder, name: string) {
    super();
    this.config = config;
    this.registerModule('wte', build.embedding(`${name}.wte`, config.vocab_size, config.n_embd));
    this.registerModule('wpe', build.embedding(`${name}.wpe`, config.n_positions, config.n_embd));
    this.registerModule('drop', new Dropout(config.embd_pdrop));
    const blocks = new ModuleDict<GPT2Block>();
    for (let i = 0; i < config.n_layer; i++)
      blocks.set(String(i), new GPT2Block(config, build, `${name}.h.${i}`, i));
    this.registerModule('h', blocks);
    this.registerModule('ln_f', build.layerNorm(`${name}.ln_f`, config.n_embd, config.layer_norm_epsilon));
  }

  forward(ids: tf.Tensor, context: AttentionContext): tf.Tensor {
    const last = context.maxDefaultPosition;
    if (last !== null && last >= this.config.n_positions) {
      throw new Error(`GPT-2: position ${last} is beyond n_positions (${this.config.n_positions})`);
    }
    return tf.tidy(() => {
      const embedded = addKeepingNothing(
        childLayer(this, 'wte').forward(ids),
        childLayer(this, 'wpe').forward(context.positionIds),
      );
      let h = childLayer(this, 'drop').forward(embedded);
      for (let i = 0; i < this.config.n_layer; i++) {
        h = (this.getSubmodule(`h.${i}`) as GPT2Block).forward(h, context);
      }
      return childLayer(this, 'ln_f').forward(h);
    });
  }
}

/** transformers' `GPT2LMHeadModel`: `transformer` plus `lm_head`, tied to `transformer.wte` by default. */
export class GPT2LMHeadModel extends CausalLMBase<GPT2Config> {
  readonly modelType = 'gpt2';
  readonly config: GPT2Config;
  readonly attentionInfo: AttentionInfo;

  constructor(config: Partial<GPT2Config> & Record<string, unknown> = {}, options: ModelOptions = {}) {
    super();
    this.config = gpt2Config(config);
    const c = this.config;
    const build = new ModuleBuilder(options.weights, c.initializer_range);
    const transformer = this.registerModule('transformer', new GPT2Model(c, build, 'transformer'));
    this.registerModule(
      'lm_head',
      build.linear('lm_head', {
        inFeatures: c.n_embd,
        outFeatures: c.vocab_size,
        bias: false,
        ...(c.tie_word_embeddings
          ? { tiedWeight: (transformer.getSubmodule('wte') as Embedding).weight }
          : {}),
      }),
    );
    this.attentionInfo = {
      numLayers: c.n_layer,
      numKeyValueHeads: c.n_head,
      headDim: c.n_embd / c.n_head,
      numHeads: c.n_head,
    };
  }

  protected computeLogits(ids: tf.Tensor, context: AttentionContext): tf.Tensor {
    const hidden = (this.getSubmodule('transformer') as GPT2Model).forward(ids, context);
    return childLayer(this, 'lm_head').forward(keepLast(hidden, context.logitsToKeep));
  }
}
