// Hugging Face PEFT's LoRA-FA optimizer (src/peft/optimizers/lorafa.py, `LoraFAOptimizer` as built by
// `create_lorafa_optimizer`) behind core's Optimizer interface, and `createOptimizer`, the entry point
// for the CLI and the bench.
import {
  AdamW,
  type Optimizer,
  type OptimizerState,
  type Parameter,
  type PeftModel,
  weightDecayGroups,
} from '@peft/core';
import { LoraLayer } from '@peft/lora';
import * as tf from '@tensorflow/tfjs-core';
import { loraFaProjection } from './pseudo_inverse.js';

/** Hyperparameters of `LoraFaOptimizer`; defaults are PEFT's (`LoraFAOptimizer`, `create_lorafa_optimizer`). */
export interface LoraFaOptimizerOptions {
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-6 (transformers' AdamW, not torch's 1e-8). */
  eps?: number;
  /** Decoupled weight decay, applied after the Adam step; default 0. */
  weightDecay?: number;
  /** Fold Adam's bias correction into the step size; default true. */
  correctBias?: boolean;
}

type Resolved = Required<LoraFaOptimizerOptions>;

/** The regularisation PEFT adds to `A·Aᵀ` before inverting it. */
export const PROJECTION_DELTA = 1e-8;

interface Moments {
  /** State name: PEFT's, the parameter name up to `lora` for a pair, else the parameter name. */
  readonly name: string;
  readonly expAvg: tf.Variable;
  readonly expAvgSq: tf.Variable;
  step: number;
}

/** A `lora_B` trained with a projected gradient, with its frozen `lora_A`. */
interface PairSlot extends Moments {
  readonly kind: 'pair';
  readonly layer: string;
  readonly a: Parameter;
  readonly b: Parameter;
  readonly scaling: number;
  /** `pinv(A·Aᵀ + δI)`, `[r, r]`, from A as it was when the optimizer was built. */
  readonly projection: tf.Tensor2D;
  /** A's data when the projection was computed (an assignment to A replaces it). */
  readonly aData: object;
}

/** Any other trainable parameter (a `lora_B` bias, `modules_to_save` copies): transformers' AdamW. */
interface PlainSlot extends Moments {
  readonly kind: 'plain';
  readonly parameter: Parameter;
}

type Slot = PairSlot | PlainSlot;

function resolve(options: LoraFaOptimizerOptions): Resolved {
  const resolved: Resolved = {
    lr: options.lr ?? 1e-3,
    betas: options.betas ?? [0.9, 0.999],
    eps: options.eps ?? 1e-6,
    weightDecay: options.weightDecay ?? 0,
    correctBias: options.correctBias ?? true,
  };
  const [beta1, beta2] = resolved.betas;
  if (!(resolved.lr >= 0)) throw new Error(`LoRA-FA optimizer: invalid learning rate ${resolved.lr}`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    throw new Error(`LoRA-FA optimizer: betas must be in [0, 1) (got ${resolved.betas})`);
  }
  if (!(resolved.eps >= 0)) throw new Error(`LoRA-FA optimizer: invalid eps ${resolved.eps}`);
  if (!(resolved.weightDecay >= 0)) {
    throw new Error(`LoRA-FA optimizer: invalid weight decay ${resolved.weightDecay}`);
  }
  return resolved;
}

function zerosLike(parameter: Parameter): tf.Variable {
  const zeros = tf.zerosLike(parameter.value);
  const variable = tf.variable(zeros, false);
  zeros.dispose();
  return variable;
}

/** The internal identity of a tensor's data: `Variable.assign` replaces it. */
function dataOf(parameter: Parameter): object {
  return (parameter.variable as unknown as { dataId: object }).dataId;
}

/** A found `lora_A` / `lora_B` pair before its projection is computed. */
interface FoundPair {
  layer: string;
  name: string;
  a: Parameter;
  b: Parameter;
  scaling: number;
}

/**
 * The (A, B) pairs of the active adapter of every LoRA layer (LoRA-FA layers are LoRA layers), with
 * the state names PEFT gives them, and every other trainable parameter by name.
 */
function findParameters(peft: PeftModel): { pairs: FoundPair[]; others: [string, Parameter][] } {
  const names = new Map<Parameter, string>();
  for (const [name, parameter] of peft.namedParameters()) names.set(parameter, name);
  const pairs: FoundPair[] = [];
  const inPairs = new Set<Parameter>();
  for (const [layerName, layer] of peft.adapterLayers()) {
    if (!(layer instanceof LoraLayer)) continue;
    for (const adapter of layer.activeAdapters) {
      const a = layer.loraA.get(adapter)!.weight;
      const b = layer.loraB.get(adapter)!.weight;
      if (!b.requiresGrad) continue;
      const bName = names.get(b)!;
      pairs.push({
        layer: layerName,
        // PEFT keys a pair's state by the name up to "lora": `...c_attn.lora`.
        name: `${bName.slice(0, bName.indexOf('lora'))}lora`,
        a,
        b,
        scaling: layer.scaling(adapter),
      });
      inPairs.add(b);
    }
  }
  const frozenA = new Set(pairs.map((pair) => pair.a));
  const others: [string, Parameter][] = [];
  for (const [parameter, name] of names) {
    if (parameter.requiresGrad && !inPairs.has(parameter) && !frozenA.has(parameter))
      others.push([name, parameter]);
  }
  return { pairs, others };
}

const STEP_COUNT = 'step_count';

/**
 * PEFT's `LoraFAOptimizer`: transformers-style AdamW in which each LoRA pair's B is updated with its
 * gradient `G = ∂L/∂B` (`[out, r]`) projected as in the LoRA-FA paper (v2):
 *
 *   g̃ = (1/s²) · G · pinv(A·Aᵀ + 1e-8·I)           s: the layer's own scaling (α/r or α/√r)
 *   m ← β1·m + (1−β1)·g̃;   v ← β2·v + (1−β2)·g̃²
 *   B ← B − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + eps)    (bias correction folded into the step)
 *   B ← B − lr·wd·B                                  (decoupled weight decay, after the step)
 *
 * A stays frozen (its `pinv` is computed once, in float64, when the optimizer is built). Other trainable
 * parameters get the same update without the projection. PEFT runs the projection under bf16 autocast
 * where bf16 is available (CPUs included); this one is float32 throughout, so it is PEFT's math
 * without the bf16 rounding.
 *
 * State names are PEFT's: `<module>.lora.exp_avg_B`, `<module>.lora.exp_avg_sq_B`, `<module>.lora.step`
 * for pairs, `<parameter>.exp_avg` / `.exp_avg_sq` / `.step` for the others.
 */
export class LoraFaOptimizer implements Optimizer {
  lrScale = 1;
  readonly options: Readonly<Resolved>;
  readonly #slots: Slot[];
  readonly #byParameter = new Map<Parameter, Slot>();
  #stepCount = 0;

  private constructor(slots: Slot[], options: Resolved) {
    this.#slots = slots;
    this.options = options;
    for (const slot of slots) this.#byParameter.set(slot.kind === 'pair' ? slot.b : slot.parameter, slot);
  }

  /**
   * The optimizer of `create_lorafa_optimizer(model, ...)` for the active adapter of `peft`. Like PEFT,
   * it freezes every managed `lora_A` (LoRA-FA layers have them frozen already; a plain LoRA model gets
   * PEFT's LoRA-FA training, without the activation saving). Async: A's values are read to compute
   * the projections.
   */
  static async create(peft: PeftModel, options: LoraFaOptimizerOptions = {}): Promise<LoraFaOptimizer> {
    const resolved = resolve(options);
    const { pairs, others } = findParameters(peft);
    if (pairs.length === 0) {
      throw new Error(
        'LoRA-FA optimizer: the model has no trainable lora_B of an active LoRA / LoRA-FA adapter',
      );
    }
    const slots: Slot[] = [];
    try {
      for (const pair of pairs) {
        const [r, columns] = pair.a.shape as [number, number];
        const aData = dataOf(pair.a);
        const pinv = loraFaProjection(await pair.a.value.data(), r, columns, PROJECTION_DELTA);
        pair.a.requiresGrad = false;
        slots.push({
          kind: 'pair',
          ...pair,
          projection: tf.tensor2d(Float32Array.from(pinv), [r, r]),
          aData,
          expAvg: zerosLike(pair.b),
          expAvgSq: zerosLike(pair.b),
          step: 0,
        });
      }
      for (const [name, parameter] of others) {
        slots.push({
          kind: 'plain',
          name,
          parameter,
          expAvg: zerosLike(parameter),
          expAvgSq: zerosLike(parameter),
          step: 0,
        });
      }
    } catch (error) {
      for (const slot of slots) disposeSlot(slot);
      throw error;
    }
    return new LoraFaOptimizer(slots, resolved);
  }

  get stepCount(): number {
    return this.#stepCount;
  }

  get lr(): number {
    return this.options.lr * this.lrScale;
  }

  parameters(): Parameter[] {
    return [...this.#byParameter.keys()];
  }

  /** Scaling `s` and projection `pinv(A·Aᵀ + δI)` of each pair, by state name (for inspection and tests). */
  pairs(): { name: string; layer: string; scaling: number; projection: tf.Tensor2D }[] {
    return this.#slots
      .filter((slot): slot is PairSlot => slot.kind === 'pair')
      .map(({ name, layer, scaling, projection }) => ({ name, layer, scaling, projection }));
  }

  step(grads: ReadonlyMap<Parameter, tf.Tensor>): void {
    // Check everything before touching anything, so that a bad call changes nothing.
    for (const [parameter, grad] of grads) {
      const slot = this.#byParameter.get(parameter);
      if (!slot)
        throw new Error('LoRA-FA optimizer: gradient for a parameter this optimizer does not manage');
      if (!tf.util.arraysEqual(grad.shape, parameter.shape)) {
        throw new Error(
          `LoRA-FA optimizer: gradient of "${slot.name}" has shape [${grad.shape}], expected [${parameter.shape}]`,
        );
      }
    }
    for (const slot of this.#slots) {
      if (slot.kind === 'pair' && grads.has(slot.b) && dataOf(slot.a) !== slot.aData) {
        throw new Error(
          `LoRA-FA optimizer: lora_A of "${slot.layer}" was changed after the optimizer was built ` +
            '(LoRA-FA keeps A frozen); build the optimizer after loading the adapter',
        );
      }
    }
    for (const slot of this.#slots) {
      const parameter = slot.kind === 'pair' ? slot.b : slot.parameter;
      const grad = grads.get(parameter);
      if (!grad) continue;
      tf.tidy(() => {
        const g =
          slot.kind === 'pair' ? tf.mul(tf.matMul(grad, slot.projection), 1 / slot.scaling ** 2) : grad;
        this.#update(slot, parameter, g);
      });
    }
    this.#stepCount++;
  }

  /** transformers' AdamW step, written as PEFT writes it (same operation order). */
  #update(slot: Slot, parameter: Parameter, grad: tf.Tensor): void {
    const { betas, eps, weightDecay, correctBias } = this.options;
    const [beta1, beta2] = betas;
    const lr = this.options.lr * this.lrScale;
    const t = slot.step + 1;
    const stepSize = correctBias ? (lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t) : lr;
    const expAvg = tf.add(tf.mul(slot.expAvg, beta1), tf.mul(grad, 1 - beta1));
    const expAvgSq = tf.add(tf.mul(slot.expAvgSq, beta2), tf.mul(tf.mul(grad, 1 - beta2), grad));
    const denom = tf.add(tf.sqrt(expAvgSq), eps);
    let updated = tf.add(parameter.value, tf.div(tf.mul(expAvg, -stepSize), denom));
    if (weightDecay > 0) updated = tf.add(updated, tf.mul(updated, -lr * weightDecay));
    parameter.assign(updated);
    slot.expAvg.assign(expAvg);
    slot.expAvgSq.assign(expAvgSq);
    slot.step = t;
  }

  stateBytes(): number {
    let bytes = 0;
    for (const slot of this.#slots) {
      bytes += 4 * (slot.expAvg.size + slot.expAvgSq.size);
      if (slot.kind === 'pair') bytes += 4 * slot.projection.size;
    }
    return bytes;
  }

  #keys(slot: Slot): { expAvg: string; expAvgSq: string; step: string } {
    const suffix = slot.kind === 'pair' ? '_B' : '';
    return {
      expAvg: `${slot.name}.exp_avg${suffix}`,
      expAvgSq: `${slot.name}.exp_avg_sq${suffix}`,
      step: `${slot.name}.step`,
    };
  }

  getState(): OptimizerState {
    const tensors = new Map<string, tf.Tensor>();
    const scalars: Record<string, number> = { [STEP_COUNT]: this.#stepCount };
    for (const slot of this.#slots) {
      const keys = this.#keys(slot);
      tensors.set(keys.expAvg, slot.expAvg);
      tensors.set(keys.expAvgSq, slot.expAvgSq);
      scalars[keys.step] = slot.step;
    }
    return { tensors, scalars };
  }

  setState(state: OptimizerState): void {
    const problems: string[] = [];
    const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;
    const expected = new Set<string>();
    for (const slot of this.#slots) {
      const keys = this.#keys(slot);
      for (const name of [keys.expAvg, keys.expAvgSq]) {
        expected.add(name);
        const tensor = state.tensors.get(name);
        if (!tensor) problems.push(`missing tensor "${name}"`);
        else if (!tf.util.arraysEqual(tensor.shape, slot.expAvg.shape)) {
          problems.push(`"${name}" has shape [${tensor.shape}], expected [${slot.expAvg.shape}]`);
        }
      }
      if (!isCount(state.scalars[keys.step])) {
        problems.push(`"${keys.step}" must be a non-negative integer (got ${state.scalars[keys.step]})`);
      }
    }
    for (const name of state.tensors.keys())
      if (!expected.has(name)) problems.push(`unexpected tensor "${name}"`);
    if (!isCount(state.scalars[STEP_COUNT])) {
      problems.push(`"${STEP_COUNT}" must be a non-negative integer (got ${state.scalars[STEP_COUNT]})`);
    }
    if (problems.length > 0) {
      throw new Error(
        `LoRA-FA optimizer setState: ${problems.length} problem(s): ${problems.slice(0, 10).join('; ')}`,
      );
    }
    tf.tidy(() => {
      for (const slot of this.#slots) {
        const keys = this.#keys(slot);
        slot.expAvg.assign(tf.cast(state.tensors.get(keys.expAvg)!, 'float32'));
        slot.expAvgSq.assign(tf.cast(state.tensors.get(keys.expAvgSq)!, 'float32'));
        slot.step = state.scalars[keys.step]!;
      }
    });
    this.#stepCount = state.scalars[STEP_COUNT]!;
  }

  dispose(): void {
    for (const slot of this.#slots) disposeSlot(slot);
  }
}

function disposeSlot(slot: Slot): void {
  slot.expAvg.dispose();
  slot.expAvgSq.dispose();
  if (slot.kind === 'pair') slot.projection.dispose();
}

/** Options of `createOptimizer`. */
export interface CreateOptimizerOptions extends LoraFaOptimizerOptions {
  /**
   * `"lora-fa"` (default): PEFT's LoRA-FA optimizer (`LoraFaOptimizer`, PEFT's defaults: eps 1e-6, no
   * weight decay). `"adamw"`: core's AdamW (torch.optim.AdamW; its defaults: eps 1e-8, weight decay
   * 0.01, biases and norm weights not decayed) on the trainable parameters, B only: A stays frozen.
   */
  optimizer?: 'lora-fa' | 'adamw';
}

/**
 * The optimizer for training a LoRA-FA model (what `peft train --method lora-fa` uses): by default
 * PEFT's LoRA-FA optimizer, or plain AdamW with `optimizer: 'adamw'`. Hand it to core's `Trainer`.
 */
export async function createOptimizer(
  peft: PeftModel,
  options: CreateOptimizerOptions = {},
): Promise<Optimizer> {
  const { optimizer = 'lora-fa', correctBias, ...adam } = options;
  if (optimizer === 'lora-fa') return LoraFaOptimizer.create(peft, options);
  if (optimizer !== 'adamw') {
    throw new Error(`LoRA-FA: unknown optimizer ${JSON.stringify(optimizer)} ("lora-fa" or "adamw")`);
  }
  if (correctBias === false)
    throw new Error('LoRA-FA: correctBias is an option of the "lora-fa" optimizer only');
  return new AdamW(weightDecayGroups(peft), adam);
}
