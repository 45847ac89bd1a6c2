import { addKeepingNothing, type Embedding, Module, ModuleDict } from '@peft/core';
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
import { type LlamaConfig, llamaConfig, slidingWindow } from './config.js';
import { RotaryEmbedding, ropeSpec } from './rope.js';

interface Rope {
  embedding: RotaryEmbedding;
  cos: tf.Tensor;
  sin: tf.Tensor;
}

/** `self_attn`: q/k/v projections, RoPE on q and k, grouped-query attention, `o_proj`. */
export class LlamaAttention extends Module {
  readonly #heads: number;
  readonly #kvHeads: number;
  readonly #headDim: number;
  readonly #attentionDropout: number;

  constructor(config: LlamaConfig, build: ModuleBuilder, name: string) {
    super();
    const { hidden_size: hidden, head_dim: headDim } = config;
    this.#attentionDropout = config.attention_dropout;
    this.#heads = config.num_attention_heads;
    this.#kvHeads = config.num_key_value_heads;
    this.#headDim = headDim;
    const qkvBias = config.model_type === 'qwen2' || config.attention_bias;
    const outBias = config.model_type !== 'qwen2' && config.attention_bias;
    const projection = (local: string, inFeatures: number, outFeatures: number, bias: boolean) =>
      this.registerModule(local, build.linear(`${name}.${local}`, { inFeatures, outFeatures, bias }));
    projection('q_proj', hidden, this.#heads * headDim, qkvBias);
    projection('k_proj', hidden, this.#kvHeads * headDim, qkvBias);
    projection('v_proj', hidden, this.#kvHeads * headDim, qkvBias);
    projection('o_proj', this.#heads * headDim, hidden, outBias);
  }

  forward(x: tf.Tensor, context: AttentionContext, rope: Rope, layerIndex: number): tf.Tensor {
    return tf.tidy(() => {
      const [batch, length] = x.shape as [number, number];
      const rotated = (name: string, heads: number) => {
        const projected = tf.reshape(childLayer(this, name).forward(x), [
          batch,
          length,
          heads,
          this.#headDim,
        ]);
        return tf.transpose(rope.embedding.apply(projected, rope.cos, rope.sin), [0, 2, 1, 3]);
      };
      const q = rotated('q_proj', this.#heads);
      const k = rotated('k_proj', this.#kvHeads);
      const v = splitHeads(childLayer(this, 'v_proj').forward(x), this.#kvHeads, this.#headDim);
      const out = context.attend(layerIndex, q, k, v, {
        dropout: this.training ? this.#attentionDropout : 0,
      });
      return childLayer(this, 'o_proj').forward(mergeHeads(out));
    });
  }
}

/** `mlp`: down_proj(act(gate_proj(x)) · up_proj(x)) (SwiGLU with SiLU). */
export class LlamaMLP extends Module {
  readonly #act: Activation;

  constructor(config: LlamaConfig, build: ModuleBuilder, name: string) {
    super();
    this.#act = ACTIVATIONS[config.hidden_act]!;
    const { hidden_size: hidden, intermediate_size: inner, mlp_bias: bias } = config;
    this.registerModule(
      'gate_proj',
      build.linear(`${name}.gate_proj`, { inFeatures: hidden, outFeatures: inner, bias }),
    );
    this.registerModule(
      'up_proj',
      build.linear(`${name}.up_proj`, { inFeatures: hidden, outFeatures: inner, bias }),
    );
    this.registerModule(
      'down_proj',
      build.linear(`${name}.down_proj`, { inFeatures: inner, outFeatures: hidden, bias }),
    );
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const gate = this.#act(childLayer(this, 'gate_proj').forward(x));
      return childLayer(this, 'down_proj').forward(tf.mul(gate, childLayer(this, 'up_proj').forward(x)));
    });
  }
}

/** `layers.{i}`: pre-RMSNorm attention and MLP with residuals. */
export class LlamaDecoderLayer extends Module {
  readonly layerIndex: number;

  constructor(config: LlamaConfig, build: ModuleBuilder, name: string, layerIndex: number) {
    super();
    this.layerIndex = layerIndex;
    const { hidden_size: hidden, rms_norm_eps: eps } = config;
    this.registerModule('self_attn', new LlamaAttention(config, build, `${name}.self_attn`));
    this.registerModule('mlp', new LlamaMLP(config, build, `${name}.mlp`));
    this.registerModule('input_layernorm', build.rmsNorm(`${name}.input_layernorm`, hidden, eps));
    this.registerModule(
      'post_attention_layernorm',
      build.rmsNorm(`${name}.post_attention_layernorm`, hidden, eps),
    );
  }

  forward(x: tf.Tensor, context: AttentionContext, rope: Rope): tf.Tensor {
    return tf.tidy(() => {
      const attention = this.getSubmodule('self_attn') as LlamaAttention;
      const normed = childLayer(this, 'input_layernorm').forward(x);
      const h = addKeepingNothing(x, attention.forward(normed, context, rope, this.layerIndex));
      return addKeepingNothing(
        h,
        childLayer(this, 'mlp').forward(childLayer(this, 'post_attention_layernorm').forward(h)),
      );
    });
  }
}

/** `model`: token embeddings, decoder layers, final RMSNorm. */
export class LlamaModel extends Module {
  readonly config: LlamaConfig;
  readonly rotaryEmbedding: RotaryEmbedding;
  readonly #slidingWindow: number | null;

  constructor(config: LlamaConfig, build: ModuleBuilder, name: string) {
    super();
    this.config = config;
    this.#slidingWindow = slidingWindow(config);
    this.registerModule(
      'embed_tokens',
      build.embedding(`${name}.embed_tokens`, config.vocab_size, config.hidden_size),
    );
    const layers = new ModuleDict<LlamaDecoderLayer>();
    for (let i = 0; i < config.num_hidden_layers; i++) {
      layers.set(String(i), new LlamaDecoderLayer(config, build, `${name}.layers.${i}`, i));
    }
    this.registerModule('layers', layers);
    this.registerModule('norm', build.rmsNorm(`${name}.norm`, config.hidden_size, config.rms_norm_eps));
    this.rotaryEmbedding = new RotaryEmbedding(ropeSpec(config), config.head_dim);
  }

  forward(ids: tf.Tensor, context: AttentionContext): tf.Tensor {
    if (this.#slidingWindow !== null && context.keyLength > this.#slidingWindow) {
      throw new Error(
        `${this.config.model_type}: ${context.keyLength} positions exceed sliding_window (${this.#slidingWindow}); sliding-window attention is not implemented`,
      );
    }
    return tf.tidy(() => {
      const { cos, sin } = this.rotaryEmbedding.cosSin(context.positionIds);
      const rope = { embedding: this.rotaryEmbedding, cos, sin };
      let h = childLayer(this, 'embed_tokens').forward(ids);
      for (let i = 0; i < this.config.num_hidden_layers; i++) {
        h = (this.getSubmodule(`layers.${i}`) as LlamaDecoderLayer).forward(h, context, rope);
      }
      return childLayer(this, 'norm').forward(h);
    });
  }

  override dispose(): void {
    super.dispose();
    this.rotaryEmbedding.dispose();
  }
}

/**
 * transformers' `LlamaForCausalLM` (also reads mistral and qwen2 checkpoints): `model` plus
 * `lm_head`, tied to `model.embed_tokens` when `tie_word_embeddings`.
 */
export class LlamaForCausalLM extends CausalLMBase<LlamaConfig> {
  readonly config: LlamaConfig;
  readonly attentionInfo: AttentionInfo;

  constructor(config: Partial<LlamaConfig> & Record<string, unknown> = {}, options: ModelOptions = {}) {
    super();
    this.config = llamaConfig(config);
    const c = this.config;
    const build = new ModuleBuilder(options.weights, c.initializer_range);
    const model = this.registerModule('model', new LlamaModel(c, build, 'model'));
    const tiedWeight = c.tie_word_embeddings
      ? (model.getSubmodule('embed_tokens') as Embedding).weight
      : undefined;
    this.registerModule(
      'lm_head',
      build.linear('lm_head', {
        inFeatures: c.hidden_size,
        outFeatures: c.vocab_size,
        bias: false,
        ...(tiedWeight ? { tiedWeight } : {}),
      }),
    );
    this.attentionInfo = {
      numLayers: c.num_hidden_layers,
      numKeyValueHeads: c.num_key_value_heads,
      headDim: c.head_dim,
      numHeads: c.num_attention_heads,
    };
  }

  get modelType(): string {
    return this.config.model_type;
  }

  override dispose(): void {
    super.dispose();
    (this.getSubmodule('model') as LlamaModel).rotaryEmbedding.dispose();
  }

  protected computeLogits(ids: tf.Tensor, context: AttentionContext): tf.Tensor {
    const hidden = (this.getSubmodule('model') as LlamaModel).forward(ids, context);
    return childLayer(this, 'lm_head').forward(keepLast(hidden, context.logitsToKeep));
  }
}
