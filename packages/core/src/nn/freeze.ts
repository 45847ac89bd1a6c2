import type { Module } from './module.js';

/** Which parameters to act on: exact dotted names, a regex matched against the whole name, or a predicate. */
export type ParameterSelector = readonly string[] | RegExp | ((name: string) => boolean);

function matcher(selector: ParameterSelector | undefined): (name: string) => boolean {
  if (selector === undefined) return () => true;
  if (typeof selector === 'function') return selector;
  if (selector instanceof RegExp) {
    const whole = new RegExp(`^(?:${selector.source})$`, selector.flags.replace('g', ''));
    return (name) => whole.test(name);
  }
  const names = new Set(selector);
  return (name) => names.has(name);
}

function setRequiresGrad(module: Module, flag: boolean, selector?: ParameterSelector): number {
  const selected = matcher(selector);
  let count = 0;
  for (const [name, parameter] of module.namedParameters()) {
    if (!selected(name)) continue;
    parameter.requiresGrad = flag;
    count++;
  }
  return count;
}

/** Mark the selected parameters (all when no selector) frozen; returns how many matched. */
export function freezeParameters(module: Module, selector?: ParameterSelector): number {
  return setRequiresGrad(module, false, selector);
}

/** Mark the selected parameters (all when no selector) trainable; returns how many matched. */
export function unfreezeParameters(module: Module, selector?: ParameterSelector): number {
  return setRequiresGrad(module, true, selector);
}
