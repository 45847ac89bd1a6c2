// The VeRA layer: PEFT's `vera.Linear` (src/peft/tuners/vera/layer.py) on core's AdapterLayer.
import { AdapterLayer, Dropout, ModuleDict, normal, Parameter, ParameterDict } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { mergedVeraLinear } from './merged_forward.js';

/** What one adapter on one layer needs. */
export interface VeraLayerConfig {
  r: number;
  /** The adapter's shared `vera_A` (`[r, maxIn]`, frozen): the layer uses its first `in` columns. */
  projectionA: Parameter;
  /** The adapter's shared `vera_B` (`[maxOut, r]`, frozen): the layer uses its first `out` rows. */
  projectionB: Parameter;
  /** Dropout probability on the VeRA branch input (training only). */
  dropout?: number;
  /** Initial value of `vera_lambda_d` (default 0.1). */
  dInitial?: number;
  /** `true` (default): `λ_b = 0`, `λ_d = d_initial`; `false`: `λ_b = 1`, `λ_d ~ N(0, 1)`. */
  initWeights?: boolean;
}

/**
 * A linear layer with VeRA adapters (Kopiczko et al. 2024): for each active adapter
 * `y = base(x) + λ_b ⊙ (B_s · (λ_d ⊙ (A_s · dropout(x))))`, where `A_s = vera_A[:, :in]` and
 * `B_s = vera_B[:out, :]` are slices of frozen random matrices shared by every adapted layer, and only
 * the vectors `λ_b` (`vera_lambda_b`, `[out]`) and `λ_d` (`vera_lambda_d`, `[r]`) train. No scaling
 * factor: the vectors carry it.
 */
export class VeraLayer extends AdapterLayer {
  readonly methodName = 'vera';
  readonly veraLambdaB = this.registerModule('vera_lambda_b', new ParameterDict());
  readonly veraLambdaD = this.registerModule('vera_lambda_d', new ParameterDict());
  readonly veraDropout = this.registerModule('vera_dropout', new ModuleDict<Dropout>());
  /** References to the shared projections (owned by the model's `base_model.vera_A` / `vera_B`). */
  readonly #projections = new Map<string, { a: Parameter; b: Parameter; r: number }>();

  addAdapter(name: string, config: unknown): void {
    const {
      r,
      projectionA,
      projectionB,
      dropout = 0,
      dInitial = 0.1,
      initWeights = true,
    } = config as VeraLayerConfig;
    if (this.#projections.has(name)) throw new Error(`VeRA: the layer already has an adapter "${name}"`);
    if (!(Number.isInteger(r) && r > 0)) {
      throw new Error(`VeRA: \`r\` should be a positive integer value but the value passed is ${r}`);
    }
    const { inFeatures, outFeatures } = this.baseLayer;
    const [rowsA, colsA] = projectionA.shape as [number, number];
    const [rowsB, colsB] = projectionB.shape as [number, number];
    // PEFT's checks when a later adapter reuses the projections of the first (layer.py, update_layer).
    const tooSmall = (what: string, size: number, needed: number) =>
      `VeRA: ${what} has a size of ${size} but ${needed} or greater is required; this probably happened ` +
      'because an additional VeRA adapter was added after the first one with incompatible shapes.';
    if (colsA < inFeatures) throw new Error(tooSmall('vera_A', colsA, inFeatures));
    if (rowsB < outFeatures) throw new Error(tooSmall('vera_B', rowsB, outFeatures));
    if (rowsA !== r || colsB !== r) {
      throw new Error(
        `VeRA: the shared projections have rank ${rowsA} but adapter "${name}" has r=${r}; every VeRA ` +
          'adapter of a model must have the rank of the first one (PEFT refuses a higher rank, and a ' +
          'lower one fails in its forward pass)',
      );
    }
    if (!Number.isFinite(dInitial)) throw new Error(`VeRA: d_initial must be finite (got ${dInitial})`);
    const drop = new Dropout(dropout);
    const lambdaB = new Parameter(initWeights ? tf.zeros([outFeatures]) : tf.ones([outFeatures]));
    const lambdaD = new Parameter(initWeights ? tf.fill([r], dInitial) : normal([r]));
    this.veraLambdaB.set(name, lambdaB);
    this.veraLambdaD.set(name, lambdaD);
    this.veraDropout.set(name, drop);
    drop.training = this.training;
    this.#projections.set(name, { a: projectionA, b: projectionB, r });
  }

  removeAdapter(name: string): void {
    this.veraLambdaB.delete(name)?.dispose();
    this.veraLambdaD.delete(name)?.dispose();
    this.veraDropout.delete(name);
    // The projections belong to the model; only the reference goes.
    this.#projections.delete(name);
  }

  adapterNames(): string[] {
    return [...this.#projections.keys()];
  }

  #adapter(name: string): { a: Parameter; b: Parameter; r: number; lambdaB: Parameter; lambdaD: Parameter } {
    const projections = this.#projections.get(name);
    if (!projections) throw new Error(`VeRA: the layer has no adapter "${name}"`);
    return { ...projections, lambdaB: this.veraLambdaB.get(name)!, lambdaD: this.veraLambdaD.get(name)! };
  }

  /** The rank of adapter `name`. */
  rank(name: string): number {
    return this.#adapter(name).r;
  }

  /** The adapter's shared projections, as held by the model (not copies, not sliced). */
  projections(name: string): { a: Parameter; b: Parameter } {
    const { a, b } = this.#adapter(name);
    return { a, b };
  }

  /** `A_s = vera_A[:, :in]` and `B_s = vera_B[:out, :]` (no copy when the layer uses all of them). */
  #slices(a: Parameter, b: Parameter, r: number): { aS: tf.Tensor; bS: tf.Tensor } {
    const { inFeatures, outFeatures } = this.baseLayer;
    return {
      aS: a.shape[1] === inFeatures ? a.value : tf.slice(a.value, [0, 0], [r, inFeatures]),
      bS: b.shape[0] === outFeatures ? b.value : tf.slice(b.value, [0, 0], [outFeatures, r]),
    };
  }

  /** The top-left slices of the shared projections this layer uses: `[r, in]` and `[out, r]`. */
  slicedProjections(name: string): { a: tf.Tensor; b: tf.Tensor } {
    const { a, b, r } = this.#adapter(name);
    return tf.tidy(() => {
      const { aS, bS } = this.#slices(a, b, r);
      return { a: tf.clone(aS), b: tf.clone(bS) };
    });
  }

  /**
   * With one active adapter, no active dropout and a frozen base, the adapter is folded into the
   * base matmul (`merged_forward.ts`: the same function and gradients with ~35% less work at the
   * bench shape); otherwise the base output plus each adapter's branch, as PEFT writes it.
   */
  override forward(x: tf.Tensor): tf.Tensor {
    const name = this.#foldableAdapter();
    if (name === null) return super.forward(x);
    const { a, b, r, lambdaB, lambdaD } = this.#adapter(name);
    const base = this.baseLayer;
    return tf.tidy(() => {
      const { aS, bS } = this.#slices(a, b, r);
      return mergedVeraLinear(x, lambdaD.value, lambdaB.value, {
        weight: base.weight.value,
        bias: base.bias?.value ?? null,
        fanInFanOut: base.fanInFanOut,
        a: aS,
        b: bS,
      });
    });
  }

  #foldableAdapter(): string | null {
    if (this.disabled || this.mergedAdapters.length > 0 || this.activeAdapters.length !== 1) return null;
    const base = this.baseLayer;
    if (base.weight.requiresGrad || base.bias?.requiresGrad) return null;
    const name = this.activeAdapters[0]!;
    const drop = this.veraDropout.get(name);
    if (!drop || (drop.training && drop.p > 0)) return null;
    return name;
  }

  protected adapterOutput(name: string, x: tf.Tensor): tf.Tensor {
    const { a, b, r, lambdaB, lambdaD } = this.#adapter(name);
    const drop = this.veraDropout.get(name)!;
    const { inFeatures, outFeatures } = this.baseLayer;
    return tf.tidy(() => {
      const { aS, bS } = this.#slices(a, b, r);
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(drop.forward(x), [-1, inFeatures]);
      const down = tf.mul(tf.matMul(x2, aS, false, true), lambdaD.value);
      const up = tf.mul(tf.matMul(down, bS, false, true), lambdaB.value);
      return tf.reshape(up, [...lead, outFeatures]);
    });
  }

  /** `(λ_b[:, None] ⊙ B_s) · (λ_d[:, None] ⊙ A_s)`, `[out, in]`. */
  deltaWeight(name: string): tf.Tensor {
    const { a, b, r, lambdaB, lambdaD } = this.#adapter(name);
    return tf.tidy(() => {
      const { aS, bS } = this.#slices(a, b, r);
      return tf.matMul(
        tf.mul(bS, tf.expandDims(lambdaB.value, 1)),
        tf.mul(aS, tf.expandDims(lambdaD.value, 1)),
      );
    });
  }
}
