import type { PeftModel } from '../adapters/peft_model.js';
import { AdamW, type AdamWOptions } from './adamw.js';
import type { Optimizer } from './optimizer.js';
import { weightDecayGroups } from './parameter_groups.js';

/**
 * The optimizer that trains `peft`'s active adapter: the technique's own when it registered one
 * (`createOptimizer`), else AdamW over the trainable tensors with biases and norm weights not decayed.
 * The one place training loops (CLI, bench) choose an optimizer, so a technique plugs in by name.
 */
export async function createTrainingOptimizer(
  peft: PeftModel,
  options: AdamWOptions = {},
): Promise<Optimizer> {
  const active = peft.activeAdapter;
  if (active === null) throw new Error('createTrainingOptimizer: the model has no active adapter');
  const { method } = peft.adapter(active);
  if (method.createOptimizer) return await method.createOptimizer(peft, options);
  return new AdamW(weightDecayGroups(peft), options);
}
