import * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '../nn/parameter.js';
import type { Optimizer, OptimizerState } from './optimizer.js';
import type { NamedParameters, ParameterGroup } from './parameter_groups.js';

/** AdamW hyperparameters; defaults are torch.optim.AdamW's. */
export interface AdamWOptions {
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01. */
  weightDecay?: number;
}

type ResolvedOptions = Required<AdamWOptions>;

/** Per-parameter state, created eagerly (zeros, step 0: what PyTorch creates lazily on first use). */
interface Slot {
  readonly name: string;
  readonly parameter: Parameter;
  readonly options: ResolvedOptions;
  readonly expAvg: tf.Variable;
  readonly expAvgSq: tf.Variable;
  /** Updates this parameter has received (PyTorch keeps `step` per parameter too). */
  step: number;
}

function resolve(options: AdamWOptions, defaults: ResolvedOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    lr: options.lr ?? defaults.lr,
    betas: options.betas ?? defaults.betas,
    eps: options.eps ?? defaults.eps,
    weightDecay: options.weightDecay ?? defaults.weightDecay,
  };
  const [beta1, beta2] = resolved.betas;
  if (!(resolved.lr >= 0)) throw new Error(`AdamW: invalid lr ${resolved.lr}`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    throw new Error(`AdamW: betas must be in [0, 1) (got ${resolved.betas})`);
  }
  if (!(resolved.eps >= 0)) throw new Error(`AdamW: invalid eps ${resolved.eps}`);
  if (!(resolved.weightDecay >= 0)) throw new Error(`AdamW: invalid weightDecay ${resolved.weightDecay}`);
  return resolved;
}

/** A non-trainable variable of zeros shaped like `parameter` (trainable would make it get gradients). */
function zerosVariableLike(parameter: Parameter): tf.Variable {
  const zeros = tf.zerosLike(parameter.value);
  const variable = tf.variable(zeros, false);
  zeros.dispose();
  return variable;
}

function isNamedPair(item: unknown): item is readonly [string, Parameter] {
  return Array.isArray(item);
}

const EXP_AVG = 'exp_avg';
const EXP_AVG_SQ = 'exp_avg_sq';
const STEP = 'step';
const STEP_COUNT = 'step_count';

/**
 * torch.optim.AdamW (amsgrad off): for each parameter with a gradient,
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps)
 * Only `requiresGrad` parameters are taken; state tensor names are `<parameter>.exp_avg` and
 * `<parameter>.exp_avg_sq`, per-parameter step counts `<parameter>.step`.
 */
export class AdamW implements Optimizer {
  lrScale = 1;
  readonly #slots = new Map<Parameter, Slot>();
  #stepCount = 0;

  /**
   * @param parameters named parameters (`module.namedParameters()`), or groups with their own options
   * (see `weightDecayGroups`); frozen parameters are skipped.
   */
  constructor(
    parameters: NamedParameters | Iterable<ParameterGroup<AdamWOptions>>,
    options: AdamWOptions = {},
  ) {
    const defaults = resolve(options, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
    const items = [...parameters];
    const groups: ParameterGroup<AdamWOptions>[] = items.every(isNamedPair)
      ? [{ parameters: items }]
      : (items as ParameterGroup<AdamWOptions>[]);
    const names = new Set<string>();
    for (const group of groups) {
      const groupOptions = resolve(group, defaults);
      for (const [name, parameter] of group.parameters) {
        if (!parameter.requiresGrad) continue;
        if (this.#slots.has(parameter)) throw new Error(`AdamW: parameter "${name}" is given twice`);
        if (names.has(name)) throw new Error(`AdamW: two parameters are named "${name}"`);
        names.add(name);
        this.#slots.set(parameter, {
          name,
          parameter,
          options: groupOptions,
          expAvg: zerosVariableLike(parameter),
          expAvgSq: zerosVariableLike(parameter),
          step: 0,
        });
      }
    }
    if (this.#slots.size === 0) throw new Error('AdamW: no trainable parameters given');
  }

  get stepCount(): number {
    return this.#stepCount;
  }

  get lr(): number {
    const first = this.#slots.values().next().value as Slot;
    return first.options.lr * this.lrScale;
  }

  parameters(): Parameter[] {
    return [...this.#slots.keys()];
  }

  step(grads: ReadonlyMap<Parameter, tf.Tensor>): void {
    // Check every gradient before touching anything, so that a bad call changes nothing.
    for (const [parameter, grad] of grads) {
      const slot = this.#slots.get(parameter);
      if (!slot) throw new Error('AdamW.step: gradient for a parameter this optimizer does not manage');
      if (!tf.util.arraysEqual(grad.shape, parameter.shape)) {
        throw new Error(
          `AdamW.step: gradient of "${slot.name}" has shape [${grad.shape}], expected [${parameter.shape}]`,
        );
      }
    }
    for (const slot of this.#slots.values()) {
      const grad = grads.get(slot.parameter);
      if (grad) this.#update(slot, grad);
    }
    this.#stepCount++;
  }

  #update(slot: Slot, grad: tf.Tensor): void {
    const { betas, eps, weightDecay } = slot.options;
    const [beta1, beta2] = betas;
    const lr = slot.options.lr * this.lrScale;
    const t = slot.step + 1;
    // Scalars are formed in float64 and rounded once to float32, as PyTorch does with Python floats.
    const stepSize = lr / (1 - beta1 ** t);
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** t);
    tf.tidy(() => {
      const param = slot.parameter.value;
      const decayed = weightDecay === 0 ? param : tf.mul(param, 1 - lr * weightDecay);
      const expAvg = tf.add(tf.mul(slot.expAvg, beta1), tf.mul(grad, 1 - beta1));
      const expAvgSq = tf.add(tf.mul(slot.expAvgSq, beta2), tf.mul(tf.mul(grad, grad), 1 - beta2));
      const denom = tf.add(tf.div(tf.sqrt(expAvgSq), biasCorrection2Sqrt), eps);
      const updated = tf.sub(decayed, tf.mul(tf.div(expAvg, denom), stepSize));
      slot.parameter.assign(updated);
      slot.expAvg.assign(expAvg);
      slot.expAvgSq.assign(expAvgSq);
    });
    slot.step = t;
  }

  stateBytes(): number {
    let bytes = 0;
    for (const slot of this.#slots.values()) {
      bytes += slot.expAvg.size * tf.util.bytesPerElement(slot.expAvg.dtype);
      bytes += slot.expAvgSq.size * tf.util.bytesPerElement(slot.expAvgSq.dtype);
    }
    return bytes;
  }

  getState(): OptimizerState {
    const tensors = new Map<string, tf.Tensor>();
    const scalars: Record<string, number> = { [STEP_COUNT]: this.#stepCount };
    for (const slot of this.#slots.values()) {
      tensors.set(`${slot.name}.${EXP_AVG}`, slot.expAvg);
      tensors.set(`${slot.name}.${EXP_AVG_SQ}`, slot.expAvgSq);
      scalars[`${slot.name}.${STEP}`] = slot.step;
    }
    return { tensors, scalars };
  }

  setState(state: OptimizerState): void {
    const problems: string[] = [];
    const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;
    const expected = new Set<string>();
    const steps = new Map<Slot, number>();
    for (const slot of this.#slots.values()) {
      for (const key of [EXP_AVG, EXP_AVG_SQ]) {
        const name = `${slot.name}.${key}`;
        expected.add(name);
        const tensor = state.tensors.get(name);
        if (!tensor) problems.push(`missing tensor "${name}"`);
        else if (!tf.util.arraysEqual(tensor.shape, slot.parameter.shape)) {
          problems.push(`"${name}" has shape [${tensor.shape}], expected [${slot.parameter.shape}]`);
        }
      }
      const step = state.scalars[`${slot.name}.${STEP}`];
      if (!isCount(step))
        problems.push(`"${slot.name}.${STEP}" must be a non-negative integer (got ${step})`);
      else steps.set(slot, step);
    }
    for (const name of state.tensors.keys())
      if (!expected.has(name)) problems.push(`unexpected tensor "${name}"`);
    const stepCount = state.scalars[STEP_COUNT];
    if (!isCount(stepCount))
      problems.push(`"${STEP_COUNT}" must be a non-negative integer (got ${stepCount})`);
    if (problems.length > 0) {
      throw new Error(`AdamW.setState: ${problems.length} problem(s): ${problems.slice(0, 10).join('; ')}`);
    }
    tf.tidy(() => {
      for (const slot of this.#slots.values()) {
        slot.expAvg.assign(tf.cast(state.tensors.get(`${slot.name}.${EXP_AVG}`)!, slot.expAvg.dtype));
        slot.expAvgSq.assign(tf.cast(state.tensors.get(`${slot.name}.${EXP_AVG_SQ}`)!, slot.expAvgSq.dtype));
        slot.step = steps.get(slot)!;
      }
    });
    this.#stepCount = stepCount as number;
  }

  dispose(): void {
    for (const slot of this.#slots.values()) {
      slot.expAvg.dispose();
      slot.expAvgSq.dispose();
    }
  }
}
