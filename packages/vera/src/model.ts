// How VeRA plugs into core (PEFT's tuners/vera/model.py): the shared projections, drawn once per
// model from `projection_prng_key` and sized for the largest adapted layer, the targets, and the entry
// points that build a VeRA PeftModel.
import {
  type AddAdapterOptions,
  getPeftModel,
  type LayerPeftMethod,
  type Module,
  Parameter,
  ParameterDict,
  type ParseAdapterConfigOptions,
  type PeftModel,
  peftModelFromConfigJson,
  type SharedModules,
  type TargetLayer,
} from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  parseVeraConfig,
  type VeraConfig,
  type VeraConfigInput,
  veraConfig,
  veraConfigSchema,
  veraConfigToJson,
  veraTargetModules,
} from './config.js';
import { VeraLayer, type VeraLayerConfig } from './layer.js';
import { TorchCpuGenerator, torchKaimingUniform } from './torch_random.js';

/** Names of the shared projections under `base_model` (PEFT: `base_model.vera_A.<adapter>`). */
export const VERA_A = 'vera_A';
export const VERA_B = 'vera_B';

/**
 * One of the shared projections (`vera_A` or `vera_B`): a buffer per adapter, like PEFT's
 * `BufferDict`, non-persistent (left out of adapter files) when `save_projection` is false. It
 * remembers the key it was drawn from, since every adapter of a model must share it.
 */
export class SharedProjection extends ParameterDict {
  constructor(
    readonly prngKey: number,
    saveProjection: boolean,
  ) {
    super({ buffers: true, persistent: saveProjection });
  }

  /** Whether the projections are saved with the adapters (PEFT's `save_projection`). */
  get saveProjection(): boolean {
    return this.persistent;
  }
}

/**
 * PEFT's `_find_dim`: the element-wise largest `(out, in)` over the layers an adapter wraps, the
 * size of the shared projections (`vera_A`: `[r, maxIn]`, `vera_B`: `[maxOut, r]`).
 */
export function projectionDims(targets: readonly TargetLayer[]): { maxIn: number; maxOut: number } {
  if (targets.length === 0) {
    throw new Error(
      'No layers types compatible with VeRA were found. Please check `peft_config.target_modules`.',
    );
  }
  return {
    maxIn: Math.max(...targets.map((t) => t.base.inFeatures)),
    maxOut: Math.max(...targets.map((t) => t.base.outFeatures)),
  };
}

/**
 * The shared projections PEFT draws for a key (`_init_vera_A_vera_B`): `torch.Generator("cpu")`
 * seeded with `projection_prng_key`, then `vera_A` `[r, maxIn]` and `vera_B` `[maxOut, r]`, each
 * kaiming-uniform with gain sqrt(2) (`U(±sqrt(6 / fan_in))`, fan-in `maxIn` and `r`), bit for bit.
 */
export function drawProjections(
  prngKey: number,
  r: number,
  maxIn: number,
  maxOut: number,
): { a: tf.Tensor2D; b: tf.Tensor2D } {
  const generator = new TorchCpuGenerator(prngKey);
  const a = torchKaimingUniform(generator, r, maxIn);
  const b = torchKaimingUniform(generator, maxOut, r);
  return { a: tf.tensor2d(a, [r, maxIn]), b: tf.tensor2d(b, [maxOut, r]) };
}

/**
 * Give adapter `adapterName` its entry in the shared projections (PEFT's `_pre_injection_hook` for
 * the first adapter, `_check_new_adapter_config` and `update_layer` for later ones). A later adapter
 * gets the first one's projections: same values, same memory (tfjs shares the data of a cloned
 * tensor until one of them is assigned, e.g. by loading a file).
 */
function prepareProjections(
  adapterName: string,
  config: VeraConfig,
  targets: readonly TargetLayer[],
  shared: SharedModules,
): void {
  const existingA = shared.get(VERA_A);
  const existingB = shared.get(VERA_B);
  let dictA: SharedProjection;
  let dictB: SharedProjection;
  let a: tf.Tensor;
  let b: tf.Tensor;
  if (existingA instanceof SharedProjection && existingB instanceof SharedProjection) {
    if (existingA.prngKey !== config.projectionPrngKey) {
      throw new Error(
        'VeRA: Vera PRNG initialisation key must be the same for all adapters. Got ' +
          `projection_prng_key=${config.projectionPrngKey} but previous config had ${existingA.prngKey}.`,
      );
    }
    if (existingA.saveProjection !== config.saveProjection) {
      throw new Error(
        'VeRA: VeRA projection weights must be saved for all adapters or none, but got multiple ' +
          `different values: save_projection=${existingA.saveProjection} and ${config.saveProjection}`,
      );
    }
    const first = existingA.keys()[0]!;
    dictA = existingA;
    dictB = existingB;
    a = tf.clone(existingA.get(first)!.value);
    b = tf.clone(existingB.get(first)!.value);
  } else {
    if (existingA || existingB) throw new Error(`VeRA: "${VERA_A}" / "${VERA_B}" are taken in base_model`);
    const { maxIn, maxOut } = projectionDims(targets);
    dictA = new SharedProjection(config.projectionPrngKey, config.saveProjection);
    dictB = new SharedProjection(config.projectionPrngKey, config.saveProjection);
    ({ a, b } = drawProjections(config.projectionPrngKey, config.r, maxIn, maxOut));
  }
  dictA.set(adapterName, new Parameter(a, { requiresGrad: false }));
  dictB.set(adapterName, new Parameter(b, { requiresGrad: false }));
  // Registered (again) through core, which then removes this adapter's entries when it goes.
  shared.set(VERA_A, dictA);
  shared.set(VERA_B, dictB);
}

/**
 * Fill a config given as a bare object with PEFT's defaults and validate it, in place (PEFT's
 * `VeraModel` also completes the user's config: default target modules, `fan_in_fan_out`).
 */
function completeConfig(config: VeraConfig): VeraConfig {
  const given = config as Partial<VeraConfig>;
  const missing = Object.entries(veraConfigSchema.defaults()).filter(
    ([key]) => given[key as keyof VeraConfig] === undefined,
  );
  Object.assign(config, Object.fromEntries(missing));
  veraConfigToJson(config); // validates every field, names the one at fault
  return config;
}

/** The shared projection of adapter `name` under `base_model`. */
function projectionOf(shared: SharedModules, key: string, name: string): Parameter {
  const parameter = (shared.get(key) as SharedProjection | undefined)?.get(name);
  if (!parameter) throw new Error(`VeRA: no shared ${key} for adapter "${name}"`);
  return parameter;
}

/**
 * The VeRA technique, registered as `"vera"` (`peft_type: "VERA"`; tensors `vera_lambda_b`,
 * `vera_lambda_d` per layer and `base_model.vera_A` / `base_model.vera_B` shared).
 */
export const veraMethod: LayerPeftMethod<VeraConfig> = {
  kind: 'layer',
  name: 'vera',
  peftType: 'VERA',
  tensorPrefix: 'vera_',
  config: { parse: parseVeraConfig, toJson: veraConfigToJson },
  targetSelection(config, modelType) {
    completeConfig(config);
    return {
      targetModules: veraTargetModules(config, modelType),
      layersToTransform: config.layersToTransform,
      layersPattern: config.layersPattern,
    };
  },
  prepare({ adapterName, config, targets, shared, modelType }) {
    // As PEFT, the saved config records the defaults used and the layout of the wrapped layers:
    // `fan_in_fan_out` ends up as the last newly wrapped layer's (true for GPT-2's Conv1D).
    if (config.targetModules == null) config.targetModules = [...veraTargetModules(config, modelType)];
    const wrapped = targets.filter((t) => t.wrapper === null);
    const last = wrapped[wrapped.length - 1];
    if (last) config.fanInFanOut = last.base.fanInFanOut;
    prepareProjections(adapterName, config, targets, shared);
  },
  createLayer: (base) => new VeraLayer(base),
  layerConfig(config, _target, { adapterName, shared }): VeraLayerConfig {
    return {
      r: config.r,
      projectionA: projectionOf(shared, VERA_A, adapterName),
      projectionB: projectionOf(shared, VERA_B, adapterName),
      dropout: config.veraDropout,
      dInitial: config.dInitial,
      initWeights: config.initWeights,
    };
  },
  modulesToSave: (config) => config.modulesToSave,
};

export interface VeraModelOptions extends AddAdapterOptions {
  /** Default `"default"`. */
  adapterName?: string;
}

/**
 * Wrap `model` with a VeRA adapter, like PEFT's `get_peft_model(model, VeraConfig(...))`: the target
 * layers are wrapped in place, the base is frozen, only `vera_lambda_b` / `vera_lambda_d` (and
 * `modules_to_save`) train; one pair of frozen projections serves every wrapped layer.
 */
export function getVeraModel<M extends Module>(
  model: M,
  config: VeraConfigInput | VeraConfig = {},
  options: VeraModelOptions = {},
): PeftModel<M> {
  return getPeftModel(model, veraMethod, veraConfig(config), options);
}

/**
 * Build a VeRA `PeftModel` from config JSON: adapter_config.json text or its parsed object, snake_case
 * as PEFT writes it (`peft_type` may be left out; any other than `"VERA"` is an error).
 */
export function veraModelFromConfigJson<M extends Module>(
  model: M,
  json: string | Record<string, unknown>,
  options: VeraModelOptions & ParseAdapterConfigOptions = {},
): PeftModel<M> {
  return peftModelFromConfigJson(model, veraMethod, json, options, 'VeRA');
}
