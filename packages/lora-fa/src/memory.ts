// What LoRA-FA saves in activation memory, computed from a model, for tests and the bench.
import type { PeftModel } from '@peft/core';
import { LoraLayer } from '@peft/lora';

/**
 * Bytes of float32 activations that a LoRA training step keeps for the backward pass and a LoRA-FA
 * step does not, for a batch of `tokens` tokens (batch × sequence length): the input x of every
 * layer running an adapter, `tokens × in_features × 4` each. (LoRA keeps x for A's gradient and
 * z = x·Aᵀ for B's; LoRA-FA keeps only z. The paper's "x versus z" count, `in − r` per token,
 * leaves out that LoRA keeps z too.) Layers that are disabled or merged count nothing.
 */
export function activationBytesSaved(peft: PeftModel, tokens: number): number {
  let bytes = 0;
  for (const [, layer] of peft.adapterLayers()) {
    if (!(layer instanceof LoraLayer) || layer.disabled || layer.mergedAdapters.length > 0) continue;
    if (layer.activeAdapters.length === 0) continue;
    bytes += tokens * layer.baseLayer.inFeatures * 4;
  }
  return bytes;
}
