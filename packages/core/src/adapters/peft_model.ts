import * as tf from '@tensorflow/tfjs-core';
import type { ParseAdapterConfigOptions } from '../files/adapter_config.js';
import type { PrefixableModel } from '../nn/attention.js';
import { freezeParameters } from '../nn/freeze.js';
import { Module, ModuleDict, ParameterDict } from '../nn/module.js';
import { AdapterLayer } from './adapter_layer.js';
import { findTargets, type TargetLayer } from './find_targets.js';
import { copyModule, findModulesToSave, ModulesToSaveWrapper } from './modules_to_save.js';
import {
  getPeftMethod,
  type LayerPeftMethod,
  type PeftMethod,
  type PromptEncoder,
  type PromptPeftMethod,
  type SharedModules,
  type WrapContext,
} from './registry.js';

/** `base_model` in PEFT's names: holds the user's model at `model` and shared technique state. */
class TunerModel extends Module {
  constructor(model: Module) {
    super();
    this.registerModule('model', model);
  }

  getShared(name: string): Module | undefined {
    for (const [key, child] of this.children()) if (key === name) return child;
    return undefined;
  }

  setShared(name: string, module: Module): void {
    if (name === 'model') throw new Error('"model" is reserved in base_model');
    this.registerModule(name, module);
  }

  deleteShared(name: string): void {
    this.removeModule(name);
  }
}

interface AdapterEntry {
  method: PeftMethod;
  config: unknown;
  /** Layer techniques: the dotted names (inside the user's model) of the wrapped layers. */
  layers: string[];
  /** Layer techniques: names of the shared modules under base_model that hold an entry for this adapter. */
  shared: string[];
  /** Dotted names (inside the user's model) of the `modules_to_save` wrappers holding a copy for it. */
  saved: string[];
}

export interface AddAdapterOptions {
  /** The model's `model_type` (`"gpt2"`, `"llama"`), for default target modules. */
  modelType?: string;
}

export interface MergeOptions {
  /** Default: the active adapter. */
  adapterNames?: readonly string[];
  /** Refuse (and change nothing) when the merged weights would hold NaN or Inf. */
  safe?: boolean;
}

/** Python's `f"{n:,d}"`. */
function groupThousands(n: number): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * A model with adapters, like Hugging Face PEFT's `PeftModel`: wraps the target layers of the user's
 * model in place (so the model's own forward runs the adapters), freezes the base, and manages named
 * adapters: switching, disabling, merging, saving. Parameter names follow PEFT
 * (`base_model.model.<module>.lora_A.default.weight`).
 */
export class PeftModel<M extends Module = Module> extends Module {
  readonly model: M;
  readonly modelType: string | undefined;
  readonly #tuner: TunerModel;
  readonly #adapters = new Map<string, AdapterEntry>();
  #promptEncoders: ModuleDict<PromptEncoder> | null = null;
  #active: string | null = null;
  #disabled = false;

  constructor(model: M, options: AddAdapterOptions = {}) {
    super();
    this.model = model;
    this.modelType = options.modelType ?? (model as { modelType?: string }).modelType;
    this.#tuner = this.registerModule('base_model', new TunerModel(model));
    freezeParameters(model);
  }

  get activeAdapter(): string | null {
    return this.#active;
  }

  get adaptersDisabled(): boolean {
    return this.#disabled;
  }

  adapterNames(): string[] {
    return [...this.#adapters.keys()];
  }

  /** The technique and parsed config of an adapter. */
  adapter(name: string): { method: PeftMethod; config: unknown } {
    const entry = this.#entry(name);
    return { method: entry.method, config: entry.config };
  }

  #entry(name: string): AdapterEntry {
    const entry = this.#adapters.get(name);
    if (!entry)
      throw new Error(`no adapter named "${name}" (adapters: ${this.adapterNames().join(', ') || 'none'})`);
    return entry;
  }

  /** Every adapter layer in the model with its dotted name (inside the user's model). */
  adapterLayers(): [string, AdapterLayer][] {
    return [...this.model.namedModules()].filter(
      (e): e is [string, AdapterLayer] => e[1] instanceof AdapterLayer,
    );
  }

  /**
   * Add an adapter. The first one becomes active. Everything is validated and built before the model
   * is touched: on any error the model is left as it was.
   */
  addAdapter(name: string, methodOrName: PeftMethod | string, config: unknown): void {
    if (this.#adapters.has(name)) throw new Error(`an adapter named "${name}" already exists`);
    if (name === '' || name.includes('.') || name === 'model')
      throw new Error(`invalid adapter name "${name}"`);
    const method = typeof methodOrName === 'string' ? getPeftMethod(methodOrName) : methodOrName;
    const other = [...this.#adapters.values()].find((e) => e.method.kind !== method.kind);
    if (other) {
      throw new Error(
        `cannot mix ${method.kind === 'prompt' ? 'prompt' : 'layer'} technique "${method.name}" with "${other.method.name}" in one model`,
      );
    }
    if (method.kind === 'layer') this.#addLayerAdapter(name, method, config);
    else this.#addPromptAdapter(name, method, config);
    const modulesToSave = method.modulesToSave?.(config);
    if (modulesToSave && modulesToSave.length > 0) {
      try {
        this.#addModulesToSave(name, modulesToSave);
      } catch (error) {
        this.deleteAdapter(name);
        throw error;
      }
    }
    if (this.#active === null) this.setAdapter(name);
    else this.#applyTrainability();
  }

  #addLayerAdapter(name: string, method: LayerPeftMethod, config: unknown): void {
    const targets = findTargets(this.model, method.targetSelection(config, this.modelType));
    for (const target of targets) {
      if (target.wrapper && target.wrapper.methodName !== method.name) {
        throw new Error(
          `layer "${target.name}" already holds a "${target.wrapper.methodName}" adapter; cannot add "${method.name}"`,
        );
      }
    }
    const touchedShared = new Map<string, Module | undefined>();
    const shared: SharedModules = {
      get: (key) => this.#tuner.getShared(key),
      set: (key, module) => {
        if (!touchedShared.has(key)) touchedShared.set(key, this.#tuner.getShared(key));
        this.#tuner.setShared(key, module);
      },
    };
    const context: WrapContext<unknown> = {
      adapterName: name,
      config,
      targets,
      shared,
      modelType: this.modelType,
    };
    const created: { target: TargetLayer; layer: AdapterLayer }[] = [];
    try {
      method.prepare?.(context);
      for (const target of targets) {
        const layer = target.wrapper ?? method.createLayer(target.base, context);
        layer.addAdapter(name, method.layerConfig ? method.layerConfig(config, target, context) : config);
        // Wrapping keeps the model's mode: a model in eval mode gets adapters in eval mode (no dropout).
        layer.train(target.base.training);
        created.push({ target, layer });
      }
    } catch (error) {
      for (const { layer } of created) {
        if (layer.adapterNames().includes(name)) layer.removeAdapter(name);
      }
      this.#removeSharedEntries(name, [...touchedShared.keys()]);
      for (const [key, previous] of touchedShared) {
        if (previous) this.#tuner.setShared(key, previous);
      }
      throw error;
    }
    for (const { target, layer } of created) {
      if (!target.wrapper) this.model.setSubmodule(target.name, layer);
      layer.setDisabled(this.#disabled);
    }
    this.#adapters.set(name, {
      method,
      config,
      layers: targets.map((t) => t.name),
      shared: [...touchedShared.keys()],
      saved: [],
    });
  }

  #addPromptAdapter(name: string, method: PromptPeftMethod, config: unknown): void {
    const model = this.#prefixableModel(method);
    const complete = method.completeConfig ? method.completeConfig(config, model) : config;
    const encoder = method.createEncoder(model, complete);
    this.#registerEncoder(name, encoder);
    this.#adapters.set(name, { method, config: complete, layers: [], shared: [], saved: [] });
  }

  /**
   * Give adapter `name` a copy of each module selected by `modules_to_save` (PEFT's
   * `ModulesToSaveWrapper`). Every copy is made before the model is touched.
   */
  #addModulesToSave(name: string, names: readonly string[]): void {
    const found = findModulesToSave(this.model, names);
    const copies: { path: string; module: Module; copy: Module }[] = [];
    try {
      for (const [path, module] of found) {
        const original = module instanceof ModulesToSaveWrapper ? module.originalModule : module;
        copies.push({ path, module, copy: copyModule(original, path) });
      }
    } catch (error) {
      for (const { copy } of copies) copy.dispose();
      throw error;
    }
    for (const { path, module, copy } of copies) {
      const wrapper = module instanceof ModulesToSaveWrapper ? module : new ModulesToSaveWrapper(module);
      if (wrapper !== module) this.model.setSubmodule(path, wrapper);
      wrapper.addAdapter(name, copy);
      wrapper.setActiveAdapter(this.#active);
      wrapper.setDisabled(this.#disabled);
    }
    this.#entry(name).saved = copies.map((c) => c.path);
  }

  /** Every `modules_to_save` wrapper in the model with its dotted name (inside the user's model). */
  #savedModuleWrappers(): [string, ModulesToSaveWrapper][] {
    return [...this.model.namedModules()].filter(
      (e): e is [string, ModulesToSaveWrapper] => e[1] instanceof ModulesToSaveWrapper,
    );
  }

  #prefixableModel(method: PeftMethod): PrefixableModel {
    const model = this.model as unknown as Partial<PrefixableModel>;
    if (typeof model.setAttentionPrefix !== 'function' || !model.attentionInfo) {
      throw new Error(
        `"${method.name}" needs a model whose attention accepts a key/value prefix (setAttentionPrefix)`,
      );
    }
    return model as PrefixableModel;
  }

  #registerEncoder(name: string, encoder: PromptEncoder): void {
    if (!this.#promptEncoders)
      this.#promptEncoders = this.registerModule('prompt_encoder', new ModuleDict<PromptEncoder>());
    this.#promptEncoders.set(name, encoder);
  }

  /** Remove an adapter's entries from shared modules, dropping modules left empty. */
  #removeSharedEntries(name: string, keys: readonly string[]): void {
    for (const key of keys) {
      const module = this.#tuner.getShared(key);
      if (module instanceof ParameterDict || module instanceof ModuleDict) {
        const removed = module.delete(name);
        removed?.dispose();
        if (module.keys().length === 0) this.#tuner.deleteShared(key);
      }
    }
  }

  /** Make `name` the one active adapter (and the only trainable one). */
  setAdapter(name: string): void {
    const entry = this.#entry(name);
    this.#active = name;
    if (entry.method.kind === 'layer') {
      for (const [, layer] of this.adapterLayers()) layer.setActiveAdapters([name]);
    }
    for (const [, wrapper] of this.#savedModuleWrappers()) wrapper.setActiveAdapter(name);
    this.#applyPrefix();
    this.#applyTrainability();
  }

  #applyPrefix(): void {
    if (!this.#promptEncoders) return;
    const encoder = this.#active && !this.#disabled ? this.#promptEncoders.get(this.#active) : undefined;
    (this.model as unknown as PrefixableModel).setAttentionPrefix(encoder ?? null);
  }

  /** Freeze everything, then unfreeze the active adapter's trainable tensors. */
  #applyTrainability(): void {
    freezeParameters(this);
    const active = this.#active;
    if (active === null) return;
    const entry = this.#entry(active);
    for (const [, wrapper] of this.#savedModuleWrappers()) {
      const copy = wrapper.copies.get(active);
      if (copy) for (const parameter of copy.parameters()) parameter.requiresGrad = true;
    }
    if (entry.method.kind === 'layer') {
      for (const [, layer] of this.adapterLayers()) {
        if (layer.adapterNames().includes(active)) layer.setAdapterTrainable(active, true);
      }
    } else {
      const encoder = this.#promptEncoders?.get(active);
      if (encoder && !(encoder as { inferenceMode?: boolean }).inferenceMode) {
        for (const parameter of encoder.parameters()) parameter.requiresGrad = true;
      }
    }
  }

  /** Delete an adapter and its tensors. Deleting the active one activates another, if any. */
  deleteAdapter(name: string): void {
    const entry = this.#entry(name);
    if (entry.method.kind === 'layer') {
      for (const [path, layer] of this.adapterLayers()) {
        if (!layer.adapterNames().includes(name)) continue;
        if (layer.mergedAdapters.includes(name)) layer.unmerge();
        layer.removeAdapter(name);
        if (layer.adapterNames().length === 0) this.model.setSubmodule(path, layer.releaseBase());
      }
      this.#removeSharedEntries(name, entry.shared);
    } else {
      const encoder = this.#promptEncoders?.delete(name);
      encoder?.dispose();
    }
    this.#removeSavedModules(name, entry.saved);
    this.#adapters.delete(name);
    if (this.#active === name) {
      this.#active = null;
      const next = this.adapterNames()[0];
      if (next !== undefined) this.setAdapter(next);
      else this.#applyPrefix();
    }
    this.#applyTrainability();
  }

  /** Drop adapter `name`'s `modules_to_save` copies, putting back originals left without copies. */
  #removeSavedModules(name: string, paths: readonly string[]): void {
    for (const path of paths) {
      const wrapper = this.model.getSubmodule(path);
      if (!(wrapper instanceof ModulesToSaveWrapper)) continue;
      wrapper.removeAdapter(name);
      if (wrapper.adapterNames().length === 0) this.model.setSubmodule(path, wrapper.originalModule);
    }
  }

  /** Run the base model alone (merged adapters are unmerged first). */
  disableAdapters(): void {
    this.#disabled = true;
    for (const [, layer] of this.adapterLayers()) layer.setDisabled(true);
    for (const [, wrapper] of this.#savedModuleWrappers()) wrapper.setDisabled(true);
    this.#applyPrefix();
  }

  enableAdapters(): void {
    this.#disabled = false;
    for (const [, layer] of this.adapterLayers()) layer.setDisabled(false);
    for (const [, wrapper] of this.#savedModuleWrappers()) wrapper.setDisabled(false);
    this.#applyPrefix();
  }

  /** Run `fn` with adapters disabled, like PEFT's `with model.disable_adapter():`. */
  withAdaptersDisabled<T>(fn: () => T): T {
    const wasDisabled = this.#disabled;
    this.disableAdapters();
    try {
      return fn();
    } finally {
      if (!wasDisabled) this.enableAdapters();
    }
  }

  #layerNames(names: readonly string[] | undefined): string[] {
    const chosen = names ? [...names] : this.#active ? [this.#active] : [];
    for (const name of chosen) {
      const entry = this.#entry(name);
      if (entry.method.kind !== 'layer')
        throw new Error(`"${entry.method.name}" adapters cannot be merged into the weights`);
    }
    return chosen;
  }

  /**
   * Merge adapters into the base weights. All merged weights are computed (and, with `safe`, checked
   * to be finite) before any is written, so a refused merge changes nothing.
   */
  merge(options: MergeOptions = {}): void {
    const names = this.#layerNames(options.adapterNames);
    const results: {
      layer: AdapterLayer;
      path: string;
      result: NonNullable<ReturnType<AdapterLayer['computeMerge']>>;
    }[] = [];
    try {
      for (const [path, layer] of this.adapterLayers()) {
        const held = names.filter((n) => layer.adapterNames().includes(n));
        const result = layer.computeMerge(held);
        if (result) results.push({ layer, path, result });
      }
      if (options.safe) {
        for (const { path, result } of results) {
          const finite = tf.tidy(() => {
            const checks = [tf.all(tf.isFinite(result.weight))];
            if (result.bias) checks.push(tf.all(tf.isFinite(result.bias)));
            return tf.all(tf.stack(checks));
          });
          const ok = finite.dataSync()[0] === 1;
          finite.dispose();
          if (!ok) {
            throw new Error(
              `safe merge refused: merging adapter(s) ${result.names.join(', ')} into "${path}" gives non-finite weights; nothing was merged`,
            );
          }
        }
      }
    } catch (error) {
      for (const { result } of results) {
        result.weight.dispose();
        result.bias?.dispose();
      }
      throw error;
    }
    for (const { layer, result } of results) layer.commitMerge(result);
  }

  /** Undo every merge. */
  unmerge(): void {
    for (const [, layer] of this.adapterLayers()) layer.unmerge();
  }

  /** Merge the active (or given) adapters, remove every adapter, and return the plain model. */
  mergeAndUnload(options: MergeOptions = {}): M {
    this.merge(options);
    return this.#unload();
  }

  /** Remove every adapter without merging and return the plain model. */
  unload(): M {
    this.unmerge();
    return this.#unload();
  }

  #unload(): M {
    for (const [path, layer] of this.adapterLayers()) this.model.setSubmodule(path, layer.releaseBase());
    // As PEFT: a wrapped module is replaced by the active adapter's copy (the original if none).
    for (const [path, wrapper] of this.#savedModuleWrappers()) {
      const active = wrapper.activeAdapter;
      const kept = active === null ? wrapper.originalModule : wrapper.copies.delete(active)!;
      for (const other of wrapper.adapterNames()) wrapper.removeAdapter(other);
      if (kept !== wrapper.originalModule) wrapper.originalModule.dispose();
      this.model.setSubmodule(path, kept);
    }
    for (const [name, entry] of this.#adapters) {
      this.#removeSharedEntries(name, entry.shared);
      if (entry.method.kind === 'prompt') this.#promptEncoders?.delete(name)?.dispose();
    }
    this.#adapters.clear();
    this.#active = null;
    this.#applyPrefix();
    return this.model;
  }

  /** PEFT's line: `trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364`. */
  trainableParametersSummary(): string {
    const { trainable, all } = this.countParameters();
    const percent = all === 0 ? 0 : (100 * trainable) / all;
    return `trainable params: ${groupThousands(trainable)} || all params: ${groupThousands(all)} || trainable%: ${percent.toFixed(4)}`;
  }

  printTrainableParameters(): void {
    console.log(this.trainableParametersSummary());
  }

  /**
   * The adapter's tensors by the keys PEFT writes in `adapter_model.safetensors`
   * (adapter name removed). The tensors are the live variables, not copies.
   */
  adapterStateDict(name: string | null = this.#active): Map<string, tf.Tensor> {
    if (name === null) throw new Error('no adapter to save');
    const entry = this.#entry(name);
    const out = new Map<string, tf.Tensor>();
    if (entry.method.kind === 'prompt') {
      const encoder = this.#promptEncoders!.get(name)!;
      return entry.method.savedTensors(encoder);
    }
    // Non-persistent buffers (VeRA's projections with `save_projection=False`) are not saved.
    for (const [path, tensor] of this.namedStateTensors()) {
      const key = savedKey(path, name, entry.method.tensorPrefix);
      if (key !== null) out.set(key, tensor.value);
    }
    const saved = this.#savedModuleKeys(name);
    if (saved.size > 0) {
      const tensors = new Map(this.namedTensors());
      for (const [key, path] of saved) out.set(key, tensors.get(path)!.value);
    }
    return out;
  }

  /** File key to in-model name of adapter `name`'s `modules_to_save` tensors (PEFT drops the wrapper part). */
  #savedModuleKeys(name: string): Map<string, string> {
    const keys = new Map<string, string>();
    for (const path of this.#entry(name).saved) {
      const wrapper = this.model.getSubmodule(path) as ModulesToSaveWrapper;
      const copy = wrapper.copies.get(name);
      if (!copy) continue;
      for (const [local] of copy.namedTensors()) {
        keys.set(
          `base_model.model.${path}.${local}`,
          `base_model.model.${path}.modules_to_save.${name}.${local}`,
        );
      }
    }
    return keys;
  }

  /**
   * Assign an adapter's tensors from PEFT file keys. Every key and shape is checked first; a file
   * that misses a tensor, has an extra one, or a wrong shape changes nothing.
   */
  loadAdapterStateDict(name: string, tensors: ReadonlyMap<string, tf.Tensor>): void {
    const entry = this.#entry(name);
    if (entry.method.kind === 'prompt') {
      const model = this.#prefixableModel(entry.method);
      const encoder = entry.method.loadEncoder(model, entry.config, tensors);
      this.#promptEncoders!.get(name)?.dispose();
      this.#registerEncoder(name, encoder);
      this.#applyPrefix();
      this.#applyTrainability();
      return;
    }
    const expected = new Map<string, string>();
    for (const [path] of this.namedStateTensors()) {
      const key = savedKey(path, name, entry.method.tensorPrefix);
      if (key !== null) expected.set(key, path);
    }
    for (const [key, path] of this.#savedModuleKeys(name)) expected.set(key, path);
    // A file may still hold a non-persistent buffer (rebuilt, not loaded): ignored, as PEFT does.
    const rebuilt = new Set<string>();
    for (const [path] of this.namedBuffers()) {
      const key = savedKey(path, name, entry.method.tensorPrefix);
      if (key !== null && !expected.has(key)) rebuilt.add(key);
    }
    const mapped = new Map<string, tf.Tensor>();
    const problems: string[] = [];
    for (const [key, tensor] of tensors) {
      const path = expected.get(key);
      if (path !== undefined) mapped.set(path, tensor);
      else if (!rebuilt.has(key))
        problems.push(`unexpected tensor "${key}" (no such adapter tensor in the model)`);
    }
    for (const key of expected.keys()) if (!tensors.has(key)) problems.push(`missing tensor "${key}"`);
    if (problems.length > 0) {
      throw new Error(`adapter "${name}" does not fit the model: ${problems.slice(0, 8).join('; ')}`);
    }
    this.loadStateDict(mapped, { strict: false });
  }
}

/**
 * PEFT's `_remove_adapter_name_from_state_dict_key` for tensors of a technique: the file key of an
 * in-model name, or null when the tensor is not one of adapter `name`'s.
 */
export function savedKey(path: string, name: string, tensorPrefix: string): string | null {
  const parts = path.split('.');
  const prefixAt = parts.findIndex((part) => part.startsWith(tensorPrefix));
  if (prefixAt < 0) return null;
  const nameAt = parts.indexOf(name, prefixAt + 1);
  if (nameAt < 0) return null;
  parts.splice(nameAt, 1);
  return parts.join('.');
}

/** Wrap `model` with a first adapter, like PEFT's `get_peft_model`. */
export function getPeftModel<M extends Module>(
  model: M,
  method: PeftMethod | string,
  config: unknown,
  options: AddAdapterOptions & { adapterName?: string } = {},
): PeftModel<M> {
  const peft = new PeftModel(model, options);
  peft.addAdapter(options.adapterName ?? 'default', method, config);
  return peft;
}

/**
 * Wrap `model` with a first adapter of `method` from config JSON: adapter_config.json text or its
 * parsed object, snake_case as PEFT writes it. `peft_type` may be left out (it is the method's); the
 * method's parser refuses any other. `configName` names the config when the text is not JSON
 * (`"LoRA"`: "LoRA config is not valid JSON: …"). What each technique's `…ModelFromConfigJson` does.
 */
export function peftModelFromConfigJson<M extends Module>(
  model: M,
  method: PeftMethod,
  json: string | Record<string, unknown>,
  options: AddAdapterOptions & { adapterName?: string } & ParseAdapterConfigOptions = {},
  configName: string = method.name,
): PeftModel<M> {
  let object: unknown = json;
  if (typeof json === 'string') {
    try {
      object = JSON.parse(json);
    } catch (error) {
      throw new Error(`${configName} config is not valid JSON: ${(error as Error).message}`);
    }
  }
  if (typeof object === 'object' && object !== null && !Array.isArray(object) && !('peft_type' in object)) {
    object = { ...object, peft_type: method.peftType };
  }
  const { onWarning, ...rest } = options;
  const config = method.config.parse(object, onWarning ? { onWarning } : {});
  return getPeftModel(model, method, config, rest);
}
