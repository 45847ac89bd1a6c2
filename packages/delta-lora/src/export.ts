// Delta-LoRA as a standard LoRA adapter, for Hugging Face PEFT (which has no Delta-LoRA) and
// @peft/lora. The base weight's updates telescope, W_T = W_0 + λs(B_T A_T − B_{K+1} A_{K+1}), so the
// trained layer W_T + s·B_T A_T equals the ORIGINAL W_0 plus a LoRA product of rank 2r:
//   B' = [(1+λ)s·B_T | −λs·B_{K+1}],  A' = [A_T ; A_{K+1}],  r' = lora_alpha' = 2r (s' = 1).
import {
  ADAPTER_WEIGHTS_METADATA,
  type AdapterFiles,
  type AdapterFilesOptions,
  type PeftModel,
  serializeAdapterConfig,
  writeSafetensorsAsync,
} from '@peft/core';
import { type LoraConfig, loraConfig, loraConfigToJson, rankAndAlpha } from '@peft/lora';
import * as tf from '@tensorflow/tfjs-core';
import { type DeltaLoraConfig, loraPart } from './config.js';
import { DELTA_LORA_METHOD_NAME, DeltaLoraLayer } from './layer.js';

/** A standard LoRA adapter: its config and its tensors under PEFT's file keys (owned by the caller). */
export interface LoraExport {
  config: LoraConfig;
  tensors: Map<string, tf.Tensor>;
  /** Whether the base weights had moved: rank 2r (true) or the plain rank-r LoRA adapter (false). */
  rankDoubled: boolean;
}

/** The Delta-LoRA adapter `name` of a model, with its config and layers. */
function deltaLoraAdapter(peft: PeftModel, name: string | null) {
  if (name === null) throw new Error('no adapter to export');
  const { method, config } = peft.adapter(name);
  if (method.name !== DELTA_LORA_METHOD_NAME) {
    throw new Error(`adapter "${name}" is a ${method.name} adapter, not delta-lora`);
  }
  const layers = peft
    .adapterLayers()
    .filter((entry): entry is [string, DeltaLoraLayer] => entry[1] instanceof DeltaLoraLayer)
    .filter(([, layer]) => layer.adapterNames().includes(name));
  return { config: config as DeltaLoraConfig, layers };
}

/**
 * Adapter `name` (default: the active one) as a standard LoRA adapter that reproduces the trained
 * model on the ORIGINAL base weights W_0 (load it onto the pretrained model, not onto this model's
 * moved weights):
 * - once the base weights have moved (training went past step K+1): rank 2r, `lora_alpha = 2r`,
 *   `use_rslora: false` (s' = 1, the scaling is inside B'), `rank_pattern` doubled and mirrored into
 *   `alpha_pattern`; `A' = [A ; A_{K+1}]`, `B' = [(1+λ)s·B | −λs·B_{K+1}]`;
 * - before that (K >= steps taken): the plain rank-r LoRA adapter, the same config and tensors that
 *   @peft/lora would save.
 * `modules_to_save` copies are included. The model is not changed.
 */
export function deltaLoraToLora(peft: PeftModel, name: string | null = peft.activeAdapter): LoraExport {
  const { config, layers } = deltaLoraAdapter(peft, name);
  const adapter = name!;
  const started = layers.some(([, layer]) => layer.started(adapter));
  if (started && !layers.every(([, layer]) => layer.started(adapter))) {
    throw new Error(
      `adapter "${adapter}": some layers have started moving their base weights and others not`,
    );
  }
  const lora = loraPart(config);
  const exported: LoraConfig = started
    ? loraConfig({
        ...lora,
        r: 2 * lora.r,
        loraAlpha: 2 * lora.r,
        useRslora: false,
        rankPattern: doubled(lora.rankPattern),
        alphaPattern: doubled(lora.rankPattern),
      })
    : loraConfig(lora);
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [path, layer] of layers) {
      const key = `base_model.model.${path}`;
      const rank = layer.rank(adapter);
      const expected = rankAndAlpha(exported, path);
      const wanted = started ? 2 * rank : rank;
      if (expected.r !== wanted || (started && expected.alpha !== wanted)) {
        throw new Error(
          `exporting "${path}": the LoRA config gives rank ${expected.r}, alpha ${expected.alpha}; expected ${wanted}`,
        );
      }
      const { a, b } = started
        ? layer.exportFactors(adapter, config.deltaUpdateRatio)
        : {
            a: tf.clone(layer.loraA.get(adapter)!.weight.value),
            b: tf.clone(layer.loraB.get(adapter)!.weight.value),
          };
      tensors.set(`${key}.lora_A.weight`, a);
      tensors.set(`${key}.lora_B.weight`, b);
    }
    // modules_to_save copies, under the keys PEFT gives them.
    const prefixes = layers.map(([path]) => `base_model.model.${path}.lora_`);
    for (const [key, tensor] of peft.adapterStateDict(adapter)) {
      if (!prefixes.some((prefix) => key.startsWith(prefix))) tensors.set(key, tf.clone(tensor));
    }
  } catch (error) {
    tf.dispose([...tensors.values()]);
    throw error;
  }
  return { config: exported, tensors, rankDoubled: started };
}

/** `rank_pattern` with each rank doubled. */
function doubled(pattern: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pattern).map(([key, r]) => [key, 2 * r]));
}

/**
 * The two files of the standard LoRA export of adapter `name` (see `deltaLoraToLora`), as PEFT's
 * `save_pretrained` writes them (`peft_type: "LORA"`, `inference_mode: true`). Browser-safe.
 */
export async function loraExportFiles(
  peft: PeftModel,
  name: string | null = peft.activeAdapter,
  options: AdapterFilesOptions = {},
): Promise<AdapterFiles> {
  const { config, tensors } = deltaLoraToLora(peft, name);
  try {
    const json = loraConfigToJson(config);
    json.inference_mode = true;
    if (options.baseModelNameOrPath !== undefined) json.base_model_name_or_path = options.baseModelNameOrPath;
    const weights = await writeSafetensorsAsync(tensors, { ...ADAPTER_WEIGHTS_METADATA });
    return { config: serializeAdapterConfig(json), weights };
  } finally {
    tf.dispose([...tensors.values()]);
  }
}
