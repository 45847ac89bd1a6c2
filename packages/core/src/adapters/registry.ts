import type { AttentionPrefixProvider, PrefixableModel } from '../nn/attention.js';
import type { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import type { AdamWOptions } from '../train/adamw.js';
import type { Optimizer } from '../train/optimizer.js';
import type { AdapterLayer } from './adapter_layer.js';
import type { TargetLayer, TargetSelection } from './find_targets.js';
import type { PeftModel } from './peft_model.js';

/** Parses an `adapter_config.json` object into a typed config and writes it back (PEFT field names). */
export interface AdapterConfigCodec<C> {
  parse(json: unknown, options?: { onWarning?: (message: string) => void }): C;
  toJson(config: C): Record<string, unknown>;
}

/** What every technique declares. */
interface PeftMethodBase<C> {
  /** Registered name, used by the CLI and the bench (`"lora"`, `"lora-fa"`, `"vera"`). */
  readonly name: string;
  /** `peft_type` written to and expected in `adapter_config.json` (`"LORA"`). */
  readonly peftType: string;
  /** For techniques that save in another's format (LoRA-FA saves LoRA files): that technique's name. */
  readonly savesAs?: string;
  readonly config: AdapterConfigCodec<C>;
  /**
   * Start of the names of the technique's tensors (`"lora_"`, `"vera_"`): how its tensors are found
   * in a model and in a file, and where the adapter name sits in their keys.
   */
  readonly tensorPrefix: string;
  /**
   * The config's `modules_to_save`: modules (matched as name suffixes) that get a trainable copy per
   * adapter, saved with the adapter.
   */
  modulesToSave?(config: C): readonly string[] | null | undefined;
  /**
   * The optimizer the technique trains with when plain AdamW over the trainable tensors is not it
   * (LoRA-FA's projected AdamW, Delta-LoRA's decorator that also moves the base weights). Training
   * loops get it through `createTrainingOptimizer`.
   */
  createOptimizer?(peft: PeftModel, options: AdamWOptions): Optimizer | Promise<Optimizer>;
}

/** Where a layer technique can keep state shared by all wrapped layers (VeRA's projections). */
export interface SharedModules {
  /** The module registered under `base_model.<name>` by this adapter's technique, if any. */
  get(name: string): Module | undefined;
  /** Register a module under `base_model.<name>` (kept until the last adapter using it is deleted). */
  set(name: string, module: Module): void;
}

export interface WrapContext<C> {
  adapterName: string;
  config: C;
  /** Every layer this adapter is about to wrap, in order (VeRA sizes its shared projections from them). */
  targets: readonly TargetLayer[];
  shared: SharedModules;
  modelType: string | undefined;
}

/** A technique that wraps linear layers (LoRA and its variants, VeRA). */
export interface LayerPeftMethod<C = unknown> extends PeftMethodBase<C> {
  readonly kind: 'layer';
  /** Which layers the config selects. */
  targetSelection(config: C, modelType: string | undefined): TargetSelection;
  /** Called once per adapter before any layer is wrapped; may register shared modules. */
  prepare?(context: WrapContext<C>): void;
  /** Wrap a base layer that has no adapter yet; the caller then adds the adapter to it. */
  createLayer(base: Linear, context: WrapContext<C>): AdapterLayer;
  /** Arguments handed to `AdapterLayer.addAdapter` for a given target. */
  layerConfig?(config: C, target: TargetLayer, context: WrapContext<C>): unknown;
}

/** A prompt encoder: a module that provides the attention prefix of every layer. */
export type PromptEncoder = Module & AttentionPrefixProvider;

/** A technique that feeds the attention layers (prefix tuning). */
export interface PromptPeftMethod<C = unknown> extends PeftMethodBase<C> {
  readonly kind: 'prompt';
  /** Fill the fields the technique takes from the model (`num_layers`, `token_dim`, ...). */
  completeConfig?(config: C, model: PrefixableModel): C;
  createEncoder(model: PrefixableModel, config: C): PromptEncoder;
  /** The tensors to save, by file key (PEFT saves the encoder's output as `prompt_embeddings`). */
  savedTensors(encoder: PromptEncoder): Map<string, import('@tensorflow/tfjs-core').Tensor>;
  /** An inference-mode encoder holding the saved tensors (copies them). */
  loadEncoder(
    model: PrefixableModel,
    config: C,
    tensors: ReadonlyMap<string, import('@tensorflow/tfjs-core').Tensor>,
  ): PromptEncoder;
}

export type PeftMethod<C = unknown> = LayerPeftMethod<C> | PromptPeftMethod<C>;

const methods = new Map<string, PeftMethod>();

/**
 * Register a technique, the one line each technique package ends with. Registering the same object
 * twice is harmless; another technique under a taken name is an error.
 */
export function registerPeftMethod<C>(method: PeftMethod<C>): void {
  const existing = methods.get(method.name);
  if (existing && existing !== method)
    throw new Error(`a PEFT method named "${method.name}" is already registered`);
  methods.set(method.name, method as PeftMethod);
}

/** The technique registered under `name`; the error lists the registered ones. */
export function getPeftMethod(name: string): PeftMethod {
  const method = methods.get(name);
  if (!method) {
    const known = [...methods.keys()];
    throw new Error(
      `unknown PEFT method "${name}"; registered: ${known.length ? known.join(', ') : 'none'} ` +
        `(import the technique's package, e.g. @peft/${name}, to register it)`,
    );
  }
  return method;
}

/** The technique that reads files of a `peft_type` (the one not saving as another). */
export function peftMethodForType(peftType: string): PeftMethod {
  for (const method of methods.values()) if (method.peftType === peftType && !method.savesAs) return method;
  const known = [...new Set([...methods.values()].map((m) => m.peftType))];
  throw new Error(
    `no registered PEFT method reads peft_type "${peftType}"; known types: ${known.length ? known.join(', ') : 'none'}`,
  );
}

export function registeredPeftMethods(): PeftMethod[] {
  return [...methods.values()];
}
