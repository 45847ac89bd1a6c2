// The LoRA layer: PEFT's `lora.Linear` (src/peft/tuners/lora/layer.py) on core's AdapterLayer.
import { AdapterLayer, Dropout, kaimingUniform, Linear, ModuleDict, normal } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

/** What one adapter on one layer needs (rank and alpha after `rank_pattern`/`alpha_pattern`). */
export interface LoraLayerConfig {
  r: number;
  alpha: number;
  /** Dropout probability on the LoRA branch input (training only). */
  dropout?: number;
  useRslora?: boolean;
  /** `true` (default), `false` or `"gaussian"`, as PEFT's `init_lora_weights`. */
  initLoraWeights?: boolean | string;
  /** Give B a bias (PEFT's `lora_bias`). */
  loraBias?: boolean;
}

/** `lora_alpha / r`, or `lora_alpha / sqrt(r)` for rank-stabilised LoRA. */
export function loraScaling(alpha: number, r: number, useRslora = false): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * A linear layer with LoRA adapters: `y = base(x) + s · B(A(dropout(x)))` for each active adapter,
 * with `A = lora_A.<name>` (`[r, in]`), `B = lora_B.<name>` (`[out, r]`) in Linear layout whatever the
 * base's layout (GPT-2's Conv1D included), as in PEFT.
 */
export class LoraLayer extends AdapterLayer {
  readonly methodName: string = 'lora';
  readonly loraA = this.registerModule('lora_A', new ModuleDict<Linear>());
  readonly loraB = this.registerModule('lora_B', new ModuleDict<Linear>());
  readonly loraDropout = this.registerModule('lora_dropout', new ModuleDict<Dropout>());
  readonly #settings = new Map<string, { r: number; alpha: number; scaling: number }>();

  addAdapter(name: string, config: unknown): void {
    const {
      r,
      alpha,
      dropout = 0,
      useRslora = false,
      initLoraWeights = true,
      loraBias = false,
    } = config as LoraLayerConfig;
    if (this.loraA.has(name)) throw new Error(`LoRA: the layer already has an adapter "${name}"`);
    if (!(Number.isInteger(r) && r > 0)) {
      throw new Error(`LoRA: r must be a positive integer (got ${r}) for adapter "${name}"`);
    }
    if (!Number.isFinite(alpha)) throw new Error(`LoRA: lora_alpha must be a finite number (got ${alpha})`);
    if (initLoraWeights !== true && initLoraWeights !== false && initLoraWeights !== 'gaussian') {
      throw new Error(`LoRA: init_lora_weights ${JSON.stringify(initLoraWeights)} is not supported`);
    }
    const { inFeatures, outFeatures } = this.baseLayer;
    const drop = new Dropout(dropout);
    let a: Linear | undefined;
    let b: Linear | undefined;
    try {
      // `false` keeps nn.Linear's own init for both (kaiming-uniform a=sqrt(5), bias U(±1/sqrt(fan_in))).
      const aWeight =
        initLoraWeights === 'gaussian'
          ? normal([r, inFeatures], 1 / r)
          : kaimingUniform([r, inFeatures], inFeatures);
      a = new Linear({ inFeatures, outFeatures: r, bias: false, weight: aWeight });
      const reset = initLoraWeights !== false;
      b = new Linear({
        inFeatures: r,
        outFeatures,
        bias: loraBias,
        ...(reset ? { weight: tf.zeros([outFeatures, r]) } : {}),
        ...(reset && loraBias ? { biasValue: tf.zeros([outFeatures]) } : {}),
      });
    } catch (error) {
      a?.dispose();
      b?.dispose();
      throw error;
    }
    this.loraA.set(name, a);
    this.loraB.set(name, b);
    this.loraDropout.set(name, drop);
    drop.training = this.training;
    this.#settings.set(name, { r, alpha, scaling: loraScaling(alpha, r, useRslora) });
  }

  removeAdapter(name: string): void {
    this.loraA.delete(name)?.dispose();
    this.loraB.delete(name)?.dispose();
    this.loraDropout.delete(name);
    this.#settings.delete(name);
  }

  adapterNames(): string[] {
    return this.loraA.keys();
  }

  #setting(name: string): { r: number; alpha: number; scaling: number } {
    const setting = this.#settings.get(name);
    if (!setting) throw new Error(`LoRA: the layer has no adapter "${name}"`);
    return setting;
  }

  /** The scaling `s` of adapter `name`. */
  scaling(name: string): number {
    return this.#setting(name).scaling;
  }

  /** The rank of adapter `name` on this layer. */
  rank(name: string): number {
    return this.#setting(name).r;
  }

  protected adapterOutput(name: string, x: tf.Tensor): tf.Tensor {
    const a = this.loraA.get(name)!;
    const drop = this.loraDropout.get(name)!;
    return tf.tidy(() => this.scaledUp(name, a.forward(drop.forward(x))));
  }

  /**
   * `s · B(h)` for `h = A(dropout(x))`, `[…, r]`. Without a `lora_bias` the scaling multiplies h,
   * not B's output (`[…, out]`: out/r times the elements, each way); the same up to rounding (exact
   * for a power of two, as with the default alpha = 2r). s = 1 multiplies nothing.
   */
  protected scaledUp(name: string, h: tf.Tensor): tf.Tensor {
    const b = this.loraB.get(name)!;
    const { scaling } = this.#setting(name);
    if (scaling === 1) return b.forward(h);
    if (b.bias) return tf.mul(b.forward(h), scaling);
    return b.forward(tf.mul(h, scaling));
  }

  /** `s · B·A`, `[out, in]`. */
  deltaWeight(name: string): tf.Tensor {
    const a = this.loraA.get(name)!;
    const b = this.loraB.get(name)!;
    const { scaling } = this.#setting(name);
    return tf.tidy(() => tf.mul(tf.matMul(b.weight.value, a.weight.value), scaling));
  }

  /** `s · lora_B.bias`, when the adapter has `lora_bias`. */
  override deltaBias(name: string): tf.Tensor | null {
    const bias = this.loraB.get(name)?.bias;
    if (!bias) return null;
    const { scaling } = this.#setting(name);
    return tf.mul(bias.value, scaling);
  }
}
