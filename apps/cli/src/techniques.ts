// Every technique package of the workspace, imported for its registration line
// (`registerPeftMethod(...)`): `--adapter` folders are read, and `merge` and `train` work, for each
// technique listed here. A new technique package is added here and to package.json's dependencies.
import type { AdamWOptions, Optimizer, PeftModel } from '@peft/core';
import { createOptimizer as deltaLoraOptimizer } from '@peft/delta-lora';
import '@peft/lora';
import { createOptimizer as loraFaOptimizer } from '@peft/lora-fa';
import '@peft/prefix';
import '@peft/vera';

/**
 * Techniques that train with their own optimizer, by registered name (the others: AdamW over the
 * trainable parameters). Delta-LoRA's also moves the frozen base weights after each step; LoRA-FA's
 * is PEFT's LoRA-FA optimizer (B trained through A's projection).
 */
export const TRAINING_OPTIMIZERS: Readonly<
  Record<string, (peft: PeftModel, options: AdamWOptions) => Optimizer | Promise<Optimizer>>
> = {
  'delta-lora': (peft, options) => deltaLoraOptimizer(peft, options),
  'lora-fa': (peft, options) => loraFaOptimizer(peft, options),
};
