import * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from './parameter.js';

/** Reserved by JavaScript objects; never valid as module or parameter names. */
const FORBIDDEN_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

function checkName(kind: string, name: string): void {
  if (name === '' || name.includes('.') || FORBIDDEN_NAMES.has(name)) {
    throw new Error(
      `invalid ${kind} name "${name}": must be non-empty, without ".", and not a reserved word`,
    );
  }
}

/** Options of `loadStateDict`. */
export interface LoadStateDictOptions {
  /** When true (default) every parameter must be present and no extra key may be given. */
  strict?: boolean;
}

/**
 * A node of the module tree, like PyTorch's `nn.Module`: named parameters and named child modules,
 * dotted names (`transformer.h.0.attn.c_attn.weight`), train/eval mode, state dicts.
 */
export abstract class Module {
  training = true;
  readonly #parameters = new Map<string, Parameter>();
  readonly #children = new Map<string, Module>();
  readonly #buffers = new Map<string, Parameter>();
  /** Names of this module's buffers left out of the state dict (PyTorch's `persistent=False`). */
  readonly #transientBuffers = new Set<string>();

  /** Register (or replace) a parameter under a local name. */
  protected registerParameter(name: string, parameter: Parameter): Parameter {
    checkName('parameter', name);
    this.#parameters.set(name, parameter);
    return parameter;
  }

  /**
   * Register (or replace) a buffer: a frozen tensor that is part of the state dict but not a
   * parameter (not counted, never trained), like PyTorch's `register_buffer` (e.g. VeRA's shared
   * projections). Its holder is a `Parameter` with `requiresGrad` false, so it can be assigned.
   * A buffer registered with `persistent: false` is left out of `stateDict` and `loadStateDict`
   * (PyTorch's `register_buffer(..., persistent=False)`: state that is rebuilt, not saved).
   */
  protected registerBuffer(
    name: string,
    buffer: Parameter,
    options: { persistent?: boolean } = {},
  ): Parameter {
    checkName('buffer', name);
    buffer.requiresGrad = false;
    this.#buffers.set(name, buffer);
    if (options.persistent ?? true) this.#transientBuffers.delete(name);
    else this.#transientBuffers.add(name);
    return buffer;
  }

  /** Buffers registered directly on this module. */
  ownBuffers(): IterableIterator<[string, Parameter]> {
    return this.#buffers.entries();
  }

  /** Every buffer with its dotted name, shared ones listed once (`persistentOnly`: the saved ones). */
  *namedBuffers(prefix = '', options: { persistentOnly?: boolean } = {}): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [moduleName, module] of this.namedModules(prefix)) {
      for (const [name, buffer] of module.#buffers) {
        if (seen.has(buffer)) continue;
        if (options.persistentOnly && module.#transientBuffers.has(name)) continue;
        seen.add(buffer);
        yield [moduleName === '' ? name : `${moduleName}.${name}`, buffer];
      }
    }
  }

  /** Register (or replace) a child module under a local name. */
  protected registerModule<M extends Module>(name: string, module: M): M {
    checkName('module', name);
    this.#children.set(name, module);
    return module;
  }

  /** Remove a child module without disposing it. */
  protected removeModule(name: string): Module | undefined {
    const child = this.#children.get(name);
    this.#children.delete(name);
    return child;
  }

  /** Remove a parameter without disposing it. */
  protected removeParameter(name: string): Parameter | undefined {
    const parameter = this.#parameters.get(name);
    this.#parameters.delete(name);
    return parameter;
  }

  /** Remove a buffer without disposing it. */
  protected removeBuffer(name: string): Parameter | undefined {
    const buffer = this.#buffers.get(name);
    this.#buffers.delete(name);
    this.#transientBuffers.delete(name);
    return buffer;
  }

  /** Parameters registered directly on this module (not recursive). */
  ownParameters(): IterableIterator<[string, Parameter]> {
    return this.#parameters.entries();
  }

  /** Direct children. */
  children(): IterableIterator<[string, Module]> {
    return this.#children.entries();
  }

  /** This module (named `prefix`, '' at the root) and every descendant, depth first. */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.#children) {
      yield* child.namedModules(prefix === '' ? name : `${prefix}.${name}`);
    }
  }

  /**
   * Every parameter with its dotted name. A parameter reachable through several paths (shared
   * projections) is listed once, under the first name met, as PyTorch does.
   */
  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [moduleName, module] of this.namedModules(prefix)) {
      for (const [name, parameter] of module.#parameters) {
        if (seen.has(parameter)) continue;
        seen.add(parameter);
        yield [moduleName === '' ? name : `${moduleName}.${name}`, parameter];
      }
    }
  }

  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** Trainable and total parameter counts (buffers excluded), as PEFT's `get_nb_trainable_parameters`. */
  countParameters(): { trainable: number; all: number } {
    let trainable = 0;
    let all = 0;
    for (const [, parameter] of this.namedParameters()) {
      all += parameter.size;
      if (parameter.requiresGrad) trainable += parameter.size;
    }
    return { trainable, all };
  }

  /** The descendant at a dotted path ('' is this module). */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    let module: Module = this;
    for (const part of path.split('.')) {
      const child = module.#children.get(part);
      if (!child) throw new Error(`no submodule "${path}" (missing "${part}")`);
      module = child;
    }
    return module;
  }

  /** Replace the descendant at a dotted path; returns the module that was there. */
  setSubmodule(path: string, replacement: Module): Module {
    const cut = path.lastIndexOf('.');
    const parent = cut < 0 ? this : this.getSubmodule(path.slice(0, cut));
    const name = path.slice(cut + 1);
    const previous = parent.#children.get(name);
    if (!previous) throw new Error(`no submodule "${path}" to replace`);
    parent.#children.set(name, replacement);
    return previous;
  }

  /** Set training mode on this module and every descendant (dropout is active only in training). */
  train(mode = true): this {
    for (const [, module] of this.namedModules()) module.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers by dotted name, like PyTorch's `named_parameters` plus `named_buffers`. */
  *namedTensors(): Generator<[string, Parameter]> {
    yield* this.namedParameters();
    yield* this.namedBuffers();
  }

  /** What the state dict holds: parameters and persistent buffers, by dotted name. */
  *namedStateTensors(): Generator<[string, Parameter]> {
    yield* this.namedParameters();
    yield* this.namedBuffers('', { persistentOnly: true });
  }

  /** Parameters and persistent buffers by dotted name; the tensors are the live variables, not copies. */
  stateDict(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, parameter] of this.namedStateTensors()) out.set(name, parameter.value);
    return out;
  }

  /**
   * Assign values by dotted name. Every name and shape is checked before anything is assigned, so a
   * failing load changes nothing. Does not take ownership of the given tensors.
   */
  loadStateDict(values: ReadonlyMap<string, tf.Tensor>, options: LoadStateDictOptions = {}): void {
    const strict = options.strict ?? true;
    const own = new Map(this.namedStateTensors());
    const problems: string[] = [];
    for (const [name, value] of values) {
      const parameter = own.get(name);
      if (!parameter) {
        if (strict) problems.push(`unexpected key "${name}"`);
        continue;
      }
      if (!tf.util.arraysEqual(parameter.shape, value.shape)) {
        problems.push(`"${name}": shape [${value.shape}] does not match the model's [${parameter.shape}]`);
      }
    }
    if (strict) {
      for (const name of own.keys()) if (!values.has(name)) problems.push(`missing key "${name}"`);
    }
    if (problems.length > 0) {
      throw new Error(`loadStateDict: ${problems.length} problem(s): ${problems.slice(0, 10).join('; ')}`);
    }
    for (const [name, value] of values) own.get(name)?.assign(value);
  }

  /** Dispose every parameter and buffer of this subtree. */
  dispose(): void {
    for (const [, tensor] of this.namedTensors()) tensor.dispose();
  }
}

/** A module whose children are addressed by key, like `nn.ModuleDict` (e.g. `lora_A.default`). */
export class ModuleDict<M extends Module = Module> extends Module {
  get(key: string): M | undefined {
    for (const [name, child] of this.children()) if (name === key) return child as M;
    return undefined;
  }

  set(key: string, module: M): void {
    this.registerModule(key, module);
  }

  delete(key: string): M | undefined {
    return this.removeModule(key) as M | undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  keys(): string[] {
    return [...this.children()].map(([name]) => name);
  }
}

/**
 * Parameters addressed by key, like `nn.ParameterDict` (e.g. VeRA's `vera_lambda_b.default`).
 * With `{ buffers: true }` the entries are buffers, like PEFT's `BufferDict` (`vera_A.default`);
 * `persistent: false` keeps them out of the state dict, like `BufferDict(persistent=False)`.
 */
export class ParameterDict extends Module {
  readonly holdsBuffers: boolean;
  readonly persistent: boolean;

  constructor(options: { buffers?: boolean; persistent?: boolean } = {}) {
    super();
    this.holdsBuffers = options.buffers ?? false;
    this.persistent = options.persistent ?? true;
    if (!this.persistent && !this.holdsBuffers) {
      throw new Error('ParameterDict: only buffers can be non-persistent (use { buffers: true })');
    }
  }

  #entries(): IterableIterator<[string, Parameter]> {
    return this.holdsBuffers ? this.ownBuffers() : this.ownParameters();
  }

  get(key: string): Parameter | undefined {
    for (const [name, parameter] of this.#entries()) if (name === key) return parameter;
    return undefined;
  }

  set(key: string, parameter: Parameter): void {
    if (this.holdsBuffers) this.registerBuffer(key, parameter, { persistent: this.persistent });
    else this.registerParameter(key, parameter);
  }

  delete(key: string): Parameter | undefined {
    return this.holdsBuffers ? this.removeBuffer(key) : this.removeParameter(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  keys(): string[] {
    return [...this.#entries()].map(([name]) => name);
  }
}
