import { AdapterConfigError } from '../files/adapter_config.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { AdapterLayer } from './adapter_layer.js';
import { ModulesToSaveWrapper } from './modules_to_save.js';

/**
 * Which layers an adapter wraps, as in Hugging Face PEFT: a list of names each matched exactly or as
 * a dotted suffix, a regex that must match the whole dotted name, or `"all-linear"` (every linear
 * layer except the output head).
 */
export type TargetModules = readonly string[] | string;

/**
 * A config's target selection: its `target_modules`, or else the technique's default for the model
 * type (PEFT's `TRANSFORMERS_MODELS_TO_<METHOD>_TARGET_MODULES_MAPPING`, given as `defaults`).
 * `technique` names the config in the error when there is neither (`"LoRA"`).
 */
export function targetModulesOrDefault(
  targetModules: TargetModules | null | undefined,
  modelType: string | undefined,
  defaults: Readonly<Record<string, readonly string[]>>,
  technique: string,
): TargetModules {
  if (targetModules != null) return targetModules;
  const found = modelType === undefined ? undefined : defaults[modelType];
  if (!found) {
    throw new AdapterConfigError(
      `${technique} config: target_modules is not set and there is no default for model type ${JSON.stringify(modelType ?? null)}; ` +
        `set targetModules (defaults exist for ${Object.keys(defaults).join(', ')})`,
      'target_modules',
    );
  }
  return found;
}

export interface TargetSelection {
  targetModules: TargetModules;
  /** Only layers whose block index is listed (PEFT's `layers_to_transform`). */
  layersToTransform?: readonly number[] | number | null;
  /** Name of the block list holding the index, e.g. `"h"` or `"layers"` (PEFT's `layers_pattern`). */
  layersPattern?: readonly string[] | string | null;
  /** Names (list: exact or suffix; string: regex) that are never targets. */
  excludeModules?: TargetModules | null;
}

/** A layer an adapter may wrap: its dotted name and the linear layer (the base, if already wrapped). */
export interface TargetLayer {
  name: string;
  base: Linear;
  /** The adapter layer already wrapping it, if any. */
  wrapper: AdapterLayer | null;
}

/** Names of output heads that `"all-linear"` leaves alone (transformers' output embeddings). */
const OUTPUT_HEAD_NAMES = new Set(['lm_head', 'score', 'classifier']);

function matchesSpec(name: string, spec: TargetModules): boolean {
  if (typeof spec === 'string') return new RegExp(`^(?:${spec})$`).test(name);
  return spec.some((target) => name === target || name.endsWith(`.${target}`));
}

function blockIndex(name: string, patterns: readonly string[] | null): number | null {
  const sources = patterns ? patterns.map((p) => `.*\\.${p}\\.(\\d+)\\.`) : ['.*\\.[^.]*\\.(\\d+)\\.'];
  for (const source of sources) {
    const match = new RegExp(`^(?:${source})`).exec(`${name}.`);
    if (match) return Number(match[1]);
  }
  return null;
}

/**
 * Every named module except the root and the insides of adapter layers (their base and adapter
 * weights) and of `modules_to_save` wrappers (their original and copies).
 */
function* modulesOutsideAdapters(module: Module, prefix = ''): Generator<[string, Module]> {
  for (const [name, child] of module.children()) {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    yield [path, child];
    if (!(child instanceof AdapterLayer) && !(child instanceof ModulesToSaveWrapper)) {
      yield* modulesOutsideAdapters(child, path);
    }
  }
}

/** The modules selected by `selection`, in module order; throws when nothing matches. */
export function findTargets(model: Module, selection: TargetSelection): TargetLayer[] {
  const spec = selection.targetModules;
  const layers =
    selection.layersToTransform == null
      ? null
      : new Set(
          typeof selection.layersToTransform === 'number'
            ? [selection.layersToTransform]
            : selection.layersToTransform,
        );
  const patterns =
    selection.layersPattern == null
      ? null
      : typeof selection.layersPattern === 'string'
        ? [selection.layersPattern]
        : selection.layersPattern;
  const targets: TargetLayer[] = [];
  const unsupported: string[] = [];
  for (const [name, module] of modulesOutsideAdapters(model)) {
    const isLinear = module instanceof Linear || module instanceof AdapterLayer;
    let selected: boolean;
    if (spec === 'all-linear') {
      const last = name.slice(name.lastIndexOf('.') + 1);
      selected = isLinear && !OUTPUT_HEAD_NAMES.has(last);
    } else {
      selected = matchesSpec(name, spec);
    }
    if (!selected) continue;
    if (selection.excludeModules != null && matchesSpec(name, selection.excludeModules)) continue;
    if (layers) {
      const index = blockIndex(name, patterns);
      if (index === null || !layers.has(index)) continue;
    }
    if (module instanceof AdapterLayer) {
      targets.push({ name, base: module.baseLayer, wrapper: module });
    } else if (module instanceof Linear) {
      targets.push({ name, base: module, wrapper: null });
    } else {
      unsupported.push(`${name} (${module.constructor.name})`);
    }
  }
  if (unsupported.length > 0) {
    throw new Error(
      `target modules must be linear layers; not supported: ${unsupported.slice(0, 5).join(', ')}` +
        (unsupported.length > 5 ? ` and ${unsupported.length - 5} more` : ''),
    );
  }
  if (targets.length === 0) {
    const linearNames = [...modulesOutsideAdapters(model)]
      .filter(([, m]) => m instanceof Linear)
      .map(([n]) => n)
      .slice(0, 6);
    const shown = typeof spec === 'string' ? JSON.stringify(spec) : `[${spec.join(', ')}]`;
    throw new Error(
      `target modules ${shown} not found in the base model` +
        (layers ? ` (restricted to layers ${[...layers].join(', ')})` : '') +
        `; linear layers include: ${linearNames.join(', ') || 'none'}`,
    );
  }
  return targets;
}
