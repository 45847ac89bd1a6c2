// Delta-LoRA's per-step update as an optimizer decorator: any inner optimizer (AdamW, ...) updates A and
// B from their gradients, then the frozen base weights move by the change of the LoRA product
// (Zi et al. 2023, Algorithm 1). The Trainer, the CLI and the bench see an ordinary `Optimizer`.
import {
  AdamW,
  type AdamWOptions,
  type Optimizer,
  type OptimizerState,
  type Parameter,
  type PeftModel,
  weightDecayGroups,
} from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import type { DeltaLoraConfig } from './config.js';
import { DELTA_LORA_METHOD_NAME, DeltaLoraLayer } from './layer.js';

/** The scalar holding the adapter's step count in `getState()`. */
const STEPS_TAKEN = 'delta_lora.steps_taken';
/** The buffers of a started layer, by their local names (in-model name: `<layer>.<buffer>.<adapter>`). */
const BUFFERS = ['lora_A_start', 'lora_B_start', 'lora_weight_delta'] as const;

export interface DeltaLoraOptimizerOptions {
  /** The Delta-LoRA adapter whose base weights move (default: the active adapter). */
  adapterName?: string;
}

/**
 * Wraps an optimizer of a Delta-LoRA model. Each `step(grads)`:
 *
 * 1. before the step, if the adapter has started (`t > K`), copies A_t and B_t of every adapted layer;
 * 2. runs the inner optimizer (A and B get their update; W has no gradient and no optimizer state);
 * 3. counts the step in the adapter's config (`steps_taken`, t+1);
 * 4. moves each base weight: `W += λ·s·(B_{t+1}A_{t+1} − B_t A_t)` (transposed for Conv1D) and adds the
 *    same to the layer's accumulated change D;
 * 5. when t+1 reaches K+1, takes the start snapshot A_{K+1}, B_{K+1}: W moves from the next step on,
 *    so that `W_T = W_0 + λ·s·(B_T A_T − B_{K+1} A_{K+1})`.
 *
 * `stateBytes()` is the inner optimizer's: W has no moments. `getState()` adds to the inner state the
 * adapter's step count and the Delta-LoRA buffers of the model (start snapshot and D, live tensors),
 * so that a Trainer checkpoint resumes exactly: `setState` moves each W to the saved D.
 */
export class DeltaLoraOptimizer implements Optimizer {
  readonly inner: Optimizer;
  readonly adapterName: string;
  readonly #peft: PeftModel;

  constructor(peft: PeftModel, inner: Optimizer, options: DeltaLoraOptimizerOptions = {}) {
    const name = options.adapterName ?? peft.activeAdapter;
    if (name === null) throw new Error('DeltaLoraOptimizer: the model has no adapter');
    const { method } = peft.adapter(name);
    if (method.name !== DELTA_LORA_METHOD_NAME) {
      throw new Error(`DeltaLoraOptimizer: adapter "${name}" is a ${method.name} adapter, not delta-lora`);
    }
    this.inner = inner;
    this.adapterName = name;
    this.#peft = peft;
    if (this.#layers().length === 0) throw new Error(`DeltaLoraOptimizer: adapter "${name}" adapts no layer`);
  }

  get stepCount(): number {
    return this.inner.stepCount;
  }

  get lrScale(): number {
    return this.inner.lrScale;
  }

  set lrScale(scale: number) {
    this.inner.lrScale = scale;
  }

  get lr(): number {
    return this.inner.lr;
  }

  parameters(): Parameter[] {
    return this.inner.parameters();
  }

  /** The adapter's config (live: `stepsTaken` is counted here). */
  get config(): DeltaLoraConfig {
    return this.#peft.adapter(this.adapterName).config as DeltaLoraConfig;
  }

  /** The adapted layers with their names in the PeftModel (`base_model.model.<path>`). */
  #layers(): [string, DeltaLoraLayer][] {
    return this.#peft
      .adapterLayers()
      .filter(
        (entry): entry is [string, DeltaLoraLayer] =>
          entry[1] instanceof DeltaLoraLayer && entry[1].adapterNames().includes(this.adapterName),
      )
      .map(([path, layer]) => [`base_model.model.${path}`, layer]);
  }

  #refuseMerged(layers: readonly [string, DeltaLoraLayer][], what: string): void {
    const merged = layers.find(([, layer]) => layer.mergedAdapters.length > 0);
    if (merged) throw new Error(`DeltaLoraOptimizer.${what}: "${merged[0]}" is merged; unmerge first`);
  }

  step(grads: ReadonlyMap<Parameter, tf.Tensor>): void {
    const name = this.adapterName;
    const config = this.config;
    const layers = this.#layers();
    this.#refuseMerged(layers, 'step');
    const moving = layers.filter(([, layer]) => layer.started(name));
    const old = moving.map(([, layer]) => layer.factors(name));
    try {
      this.inner.step(grads);
      config.stepsTaken += 1;
      for (const [i, [, layer]] of moving.entries())
        layer.moveBaseWeight(name, old[i]!, config.deltaUpdateRatio);
    } finally {
      for (const { a, b } of old) {
        a.dispose();
        b.dispose();
      }
    }
    if (config.stepsTaken >= config.updateStartSteps + 1) {
      for (const [, layer] of layers) if (!layer.started(name)) layer.start(name);
    }
  }

  stateBytes(): number {
    return this.inner.stateBytes();
  }

  getState(): OptimizerState {
    const state = this.inner.getState();
    const tensors = new Map(state.tensors);
    for (const [path, layer] of this.#layers()) {
      const delta = layer.deltaState(this.adapterName);
      if (!delta) continue;
      const [aName, bName, dName] = BUFFERS.map((buffer) => `${path}.${buffer}.${this.adapterName}`);
      tensors.set(aName!, delta.aStart);
      tensors.set(bName!, delta.bStart);
      tensors.set(dName!, delta.weightDelta);
    }
    return { tensors, scalars: { ...state.scalars, [STEPS_TAKEN]: this.config.stepsTaken } };
  }

  setState(state: OptimizerState): void {
    const name = this.adapterName;
    const config = this.config;
    const layers = this.#layers();
    const problems: string[] = [];
    const steps = state.scalars[STEPS_TAKEN];
    if (!(Number.isInteger(steps) && (steps as number) >= 0)) {
      problems.push(
        `"${STEPS_TAKEN}" must be a non-negative integer (got ${steps}): not a Delta-LoRA state?`,
      );
    }
    const started = (steps as number) >= config.updateStartSteps + 1;
    const ours = new Set<string>();
    const restored = new Map<DeltaLoraLayer, [tf.Tensor, tf.Tensor, tf.Tensor]>();
    for (const [path, layer] of layers) {
      const names = BUFFERS.map((buffer) => `${path}.${buffer}.${name}`);
      const given = names.map((key) => state.tensors.get(key));
      for (const key of names) ours.add(key);
      if (!started) {
        names.forEach((key, i) => {
          if (given[i])
            problems.push(`unexpected tensor "${key}" (the adapter has not reached its start step)`);
        });
        continue;
      }
      const expectedShapes = [
        layer.loraA.get(name)!.weight.shape,
        layer.loraB.get(name)!.weight.shape,
        layer.baseLayer.weight.shape,
      ];
      names.forEach((key, i) => {
        const tensor = given[i];
        if (!tensor) problems.push(`missing tensor "${key}"`);
        else if (!tf.util.arraysEqual(tensor.shape, expectedShapes[i]!)) {
          problems.push(`"${key}" has shape [${tensor.shape}], expected [${expectedShapes[i]}]`);
        }
      });
      if (given.every((tensor) => tensor !== undefined))
        restored.set(layer, given as [tf.Tensor, tf.Tensor, tf.Tensor]);
    }
    if (problems.length > 0) {
      throw new Error(
        `DeltaLoraOptimizer.setState: ${problems.length} problem(s): ${problems.slice(0, 10).join('; ')}`,
      );
    }
    this.#refuseMerged(layers, 'setState');
    const innerTensors = new Map([...state.tensors].filter(([key]) => !ours.has(key)));
    const { [STEPS_TAKEN]: _, ...innerScalars } = state.scalars;
    // The inner optimizer checks its part and throws before changing anything; ours is checked above.
    this.inner.setState({ tensors: innerTensors, scalars: innerScalars });
    config.stepsTaken = steps as number;
    for (const [, layer] of layers) {
      const values = restored.get(layer);
      layer.setDeltaState(
        name,
        values ? { aStart: values[0], bStart: values[1], weightDelta: values[2] } : null,
      );
    }
  }

  dispose(): void {
    this.inner.dispose();
  }
}

export interface CreateOptimizerOptions extends AdamWOptions, DeltaLoraOptimizerOptions {}

/**
 * The optimizer a generic training loop needs for a Delta-LoRA model: AdamW over the trainable
 * parameters (biases and norm weights not decayed, as the Trainer's default), wrapped in
 * `DeltaLoraOptimizer`. `new Trainer({ module: peft, loss, optimizer: createOptimizer(peft, { lr: 2e-4 }) })`.
 */
export function createOptimizer(peft: PeftModel, options: CreateOptimizerOptions = {}): DeltaLoraOptimizer {
  const { adapterName, ...adamw } = options;
  return new DeltaLoraOptimizer(
    peft,
    new AdamW(weightDecayGroups(peft), adamw),
    adapterName === undefined ? {} : { adapterName },
  );
}
