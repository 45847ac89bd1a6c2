import { LayerNorm } from '../nn/layer_norm.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { RMSNorm } from '../nn/rms_norm.js';

/** Named parameters, as `module.namedParameters()` yields them. */
export type NamedParameters = Iterable<readonly [string, Parameter]>;

/** Parameters sharing optimizer options (PyTorch's param groups); unset options use the optimizer's. */
export type ParameterGroup<Options> = Options & { parameters: NamedParameters };

/** Why a parameter is excluded from weight decay: its name, the parameter, and the module owning it. */
export type NoDecayRule = (name: string, parameter: Parameter, owner: Module) => boolean;

/**
 * transformers' Trainer rule: biases and the weights of normalisation layers are not decayed
 * (decaying a norm's scale towards 0 fights the normalisation).
 */
export const biasAndNormNoDecay: NoDecayRule = (name, _parameter, owner) =>
  name === 'bias' || name.endsWith('.bias') || owner instanceof LayerNorm || owner instanceof RMSNorm;

/**
 * The trainable (`requiresGrad`) parameters of `module` split into two groups: those decayed (with the
 * optimizer's default weight decay) and those excluded by `noDecay` (weight decay 0). Empty groups are
 * left out.
 */
export function weightDecayGroups(
  module: Module,
  noDecay: NoDecayRule = biasAndNormNoDecay,
): ParameterGroup<{ weightDecay?: number }>[] {
  const decayed: [string, Parameter][] = [];
  const notDecayed: [string, Parameter][] = [];
  const seen = new Set<Parameter>();
  for (const [moduleName, owner] of module.namedModules()) {
    for (const [localName, parameter] of owner.ownParameters()) {
      if (seen.has(parameter)) continue;
      seen.add(parameter);
      if (!parameter.requiresGrad) continue;
      const name = moduleName === '' ? localName : `${moduleName}.${localName}`;
      (noDecay(name, parameter, owner) ? notDecayed : decayed).push([name, parameter]);
    }
  }
  const groups: ParameterGroup<{ weightDecay?: number }>[] = [];
  if (decayed.length > 0) groups.push({ parameters: decayed });
  if (notDecayed.length > 0) groups.push({ parameters: notDecayed, weightDecay: 0 });
  return groups;
}
