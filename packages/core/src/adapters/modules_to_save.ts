import * as tf from '@tensorflow/tfjs-core';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layer_norm.js';
import { Linear } from '../nn/linear.js';
import { Module, ModuleDict } from '../nn/module.js';
import { RMSNorm } from '../nn/rms_norm.js';
import { AdapterLayer } from './adapter_layer.js';

/** A module that knows how to copy itself (for `modules_to_save` on module types core does not know). */
interface Cloneable {
  clone(): Module;
}

function isCloneable(module: Module): module is Module & Cloneable {
  return typeof (module as Partial<Cloneable>).clone === 'function';
}

/**
 * An independent copy of a layer, with the same values (PEFT's `copy.deepcopy(original_module)`).
 * Core's leaf layers are copied directly; other modules must provide `clone()`. A tied weight is
 * copied, so the copy is untied.
 */
export function copyModule(module: Module, name = 'module'): Module {
  let copy: Module;
  if (isCloneable(module)) copy = module.clone();
  else if (module instanceof Linear) {
    copy = new Linear({
      inFeatures: module.inFeatures,
      outFeatures: module.outFeatures,
      fanInFanOut: module.fanInFanOut,
      bias: module.bias !== null,
      weight: tf.clone(module.weight.value),
      ...(module.bias ? { biasValue: tf.clone(module.bias.value) } : {}),
    });
  } else if (module instanceof Embedding) {
    copy = new Embedding({
      numEmbeddings: module.numEmbeddings,
      embeddingDim: module.embeddingDim,
      weight: tf.clone(module.weight.value),
    });
  } else if (module instanceof LayerNorm) {
    const norm = new LayerNorm({ dim: module.dim, eps: module.eps });
    norm.weight.assign(module.weight.value);
    norm.bias.assign(module.bias.value);
    copy = norm;
  } else if (module instanceof RMSNorm) {
    const norm = new RMSNorm({ dim: module.dim, eps: module.eps });
    norm.weight.assign(module.weight.value);
    copy = norm;
  } else {
    throw new Error(
      `modules_to_save: cannot copy "${name}" (${module.constructor.name}); supported are Linear, Embedding, ` +
        'LayerNorm, RMSNorm and modules with a clone() method',
    );
  }
  copy.training = module.training;
  return copy;
}

/**
 * PEFT's `ModulesToSaveWrapper`: a module listed in a config's `modules_to_save` is kept as
 * `original_module` (frozen) beside one trainable copy per adapter (`modules_to_save.<adapter>`); the
 * forward pass runs the active adapter's copy, or the original when adapters are disabled or the
 * active adapter has no copy here.
 */
export class ModulesToSaveWrapper extends Module {
  readonly originalModule: Module;
  readonly copies: ModuleDict;
  #active: string | null = null;
  #disabled = false;

  constructor(original: Module) {
    super();
    this.originalModule = this.registerModule('original_module', original);
    this.copies = this.registerModule('modules_to_save', new ModuleDict());
  }

  /** Add (a copy of the original for) adapter `name`; `copy` is a prepared copy to use instead. */
  addAdapter(name: string, copy: Module = copyModule(this.originalModule)): void {
    if (this.copies.has(name)) throw new Error(`modules_to_save already holds adapter "${name}"`);
    this.copies.set(name, copy);
  }

  /** Dispose and forget adapter `name`'s copy. */
  removeAdapter(name: string): void {
    this.copies.delete(name)?.dispose();
    if (this.#active === name) this.#active = null;
  }

  adapterNames(): string[] {
    return this.copies.keys();
  }

  /** The adapter whose copy runs (null: the original runs). */
  get activeAdapter(): string | null {
    return this.#active;
  }

  /** Run adapter `name`'s copy (a name without a copy here, or null, runs the original). */
  setActiveAdapter(name: string | null): void {
    this.#active = name !== null && this.copies.has(name) ? name : null;
  }

  get disabled(): boolean {
    return this.#disabled;
  }

  setDisabled(disabled: boolean): void {
    this.#disabled = disabled;
  }

  /** The module the forward pass runs now. */
  current(): Module {
    if (this.#disabled || this.#active === null) return this.originalModule;
    return this.copies.get(this.#active)!;
  }

  forward(...args: unknown[]): unknown {
    const module = this.current() as unknown as { forward?: (...a: unknown[]) => unknown };
    if (typeof module.forward !== 'function') {
      throw new Error(`modules_to_save: ${module.constructor.name} has no forward()`);
    }
    return module.forward(...args);
  }
}

/** Modules outside adapter layers and wrappers (wrappers themselves included), with dotted names. */
function* candidates(module: Module, prefix = ''): Generator<[string, Module]> {
  for (const [name, child] of module.children()) {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    yield [path, child];
    if (!(child instanceof AdapterLayer) && !(child instanceof ModulesToSaveWrapper)) {
      yield* candidates(child, path);
    }
  }
}

/**
 * The modules selected by a `modules_to_save` list, as PEFT's `_set_trainable` matches them: every
 * module whose dotted name ends with one of the entries (outermost match only). Throws when nothing
 * matches, or when a selected module is an adapter layer (a layer cannot be both).
 */
export function findModulesToSave(model: Module, names: readonly string[]): [string, Module][] {
  const found: [string, Module][] = [];
  for (const [path, module] of candidates(model)) {
    if (!names.some((name) => path.endsWith(name))) continue;
    if (found.some(([outer]) => path.startsWith(`${outer}.`))) continue;
    if (module instanceof AdapterLayer) {
      throw new Error(
        `modules_to_save: "${path}" is already an adapter layer (a target module); a layer cannot be both`,
      );
    }
    found.push([path, module]);
  }
  if (found.length === 0) {
    throw new Error(`modules_to_save [${names.join(', ')}] not found in the base model`);
  }
  return found;
}
