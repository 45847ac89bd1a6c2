// The techniques the bench compares, each with its documented bench defaults. Every technique is
// looked up by name in core's registry (`getPeftMethod`) once its package is imported; a technique
// that brings its own optimizer (LoRA-FA) or optimizer decorator (Delta-LoRA) exports
// `createOptimizer(peft, options)`, which the bench uses when present. Full fine-tuning is the
// baseline: the plain model with every parameter trainable and AdamW.
import {
  AdamW,
  type AdapterFiles,
  adapterFiles,
  getPeftMethod,
  getPeftModel,
  type Module,
  type Optimizer,
  type PeftModel,
  unfreezeParameters,
  weightDecayGroups,
} from '@peft/core';
import type { CausalLM } from '@peft/models';

export interface TechniqueSetup {
  /** The module the Trainer trains (the PeftModel, or the model itself for full fine-tuning). */
  module: Module;
  peft: PeftModel | null;
  optimizer: Optimizer;
}

export interface Technique {
  /** Bench name: `full` or the registered PEFT method name. */
  name: string;
  label: string;
  /** The package that registers it (imported before use). */
  packageName: string | null;
  /** The technique's config in PEFT's adapter_config.json names (`null` for full fine-tuning). */
  config(steps: number): Record<string, unknown> | null;
  lr: number;
  /** What the defaults are and why, for the report. */
  notes: string;
  /** Which Hugging Face PEFT setup `--peer` times for it (null: PEFT has no such technique). */
  peer: string | null;
}

/** The bench's techniques, in report order. */
// Learning rates are set for the bench's short runs (a dozen steps): higher than long-run practice,
// and higher still for the techniques with few trainable scalars (VeRA, prefix).
export const TECHNIQUES: readonly Technique[] = [
  {
    name: 'full',
    label: 'Full fine-tuning',
    packageName: null,
    config: () => null,
    lr: 3e-4,
    notes: 'every weight trains; AdamW lr 3e-4 (a tenth of the pretraining rate)',
    peer: 'full',
  },
  {
    name: 'lora',
    label: 'LoRA',
    packageName: '@peft/lora',
    config: () => ({ r: 8, lora_alpha: 16, lora_dropout: 0.0, task_type: 'CAUSAL_LM' }),
    lr: 5e-3,
    notes:
      'r=8, alpha=16, no dropout, PEFT default targets (c_attn for GPT-2, q_proj/v_proj for LLaMA); AdamW lr 5e-3',
    peer: 'lora',
  },
  {
    name: 'lora-fa',
    label: 'LoRA-FA',
    packageName: '@peft/lora-fa',
    config: () => ({ r: 8, lora_alpha: 16, lora_dropout: 0.0, task_type: 'CAUSAL_LM' }),
    lr: 5e-3,
    notes:
      "LoRA's config with A frozen at its random init, only B trains; PEFT's LoRA-FA optimizer (projected gradient AdamW) lr 5e-3",
    peer: 'lora-fa',
  },
  {
    name: 'vera',
    label: 'VeRA',
    packageName: '@peft/vera',
    config: () => ({ r: 256, d_initial: 0.1, vera_dropout: 0.0, task_type: 'CAUSAL_LM' }),
    lr: 5e-2,
    notes:
      "PEFT's defaults (r=256 shared frozen projections, d_initial 0.1); only the scaling vectors train, so a much higher lr (5e-2)",
    peer: 'vera',
  },
  {
    name: 'delta-lora',
    label: 'Delta-LoRA',
    packageName: '@peft/delta-lora',
    // The paper starts updating W after K=500 of thousands of steps; the bench scales K to a tenth of its steps.
    config: (steps) => ({
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.0,
      delta_update_ratio: 2,
      update_start_steps: Math.max(1, Math.round(steps / 10)),
      task_type: 'CAUSAL_LM',
    }),
    lr: 5e-3,
    notes:
      "LoRA's r=8, alpha=16 (no dropout, as the paper); update ratio lambda=2, start step K = a tenth of the run's steps (paper: 500 of thousands); AdamW lr 5e-3; adapter file = the standard LoRA export (rank 2r once W has moved)",
    peer: null,
  },
  {
    name: 'prefix',
    label: 'Prefix tuning',
    packageName: '@peft/prefix',
    config: () => ({ num_virtual_tokens: 20, prefix_projection: false, task_type: 'CAUSAL_LM' }),
    lr: 3e-2,
    notes: '20 virtual tokens, no reparametrisation MLP (what PEFT saves); AdamW lr 3e-2',
    peer: 'prefix',
  },
];

export const TECHNIQUE_NAMES = TECHNIQUES.map((t) => t.name);

export function techniqueByName(name: string): Technique {
  const technique = TECHNIQUES.find((t) => t.name === name);
  if (!technique) throw new Error(`unknown technique "${name}" (known: ${TECHNIQUE_NAMES.join(', ')})`);
  return technique;
}

/** What a technique package exports that the bench may use. */
interface TechniquePackage {
  /** A technique's own optimizer (LoRA-FA) or optimizer decorator (Delta-LoRA). */
  createOptimizer?: (
    peft: PeftModel,
    options: { lr: number; weightDecay?: number },
  ) => Optimizer | Promise<Optimizer>;
  /** The files that carry the result in PEFT's LoRA format when the adapter alone does not (Delta-LoRA). */
  loraExportFiles?: (peft: PeftModel) => Promise<AdapterFiles>;
}

const loaded = new Map<string, TechniquePackage>();

/**
 * Imports each technique's package (which registers it with core). Returns the techniques that are
 * available and, for the others, why not (a package that is not installed yet, for instance).
 */
export async function loadTechniques(
  names: readonly string[],
): Promise<{ available: Technique[]; missing: { name: string; reason: string }[] }> {
  const available: Technique[] = [];
  const missing: { name: string; reason: string }[] = [];
  for (const name of names) {
    const technique = techniqueByName(name);
    if (technique.packageName === null) {
      available.push(technique);
      continue;
    }
    try {
      if (!loaded.has(technique.packageName)) {
        loaded.set(technique.packageName, (await import(technique.packageName)) as TechniquePackage);
      }
      getPeftMethod(technique.name);
      available.push(technique);
    } catch (error) {
      const notInstalled = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
      missing.push({
        name,
        reason: notInstalled
          ? `${technique.packageName} is not installed (not yet a dependency of @peft/bench)`
          : `${technique.packageName} could not be loaded (${(error as Error).message.split('\n')[0]})`,
      });
    }
  }
  return { available, missing };
}

/** Wraps `model` for training with the technique and builds its optimizer. */
export async function setUpTechnique(
  technique: Technique,
  model: CausalLM,
  steps: number,
  lr = technique.lr,
): Promise<TechniqueSetup> {
  if (technique.packageName === null) {
    unfreezeParameters(model);
    return {
      module: model,
      peft: null,
      optimizer: new AdamW(weightDecayGroups(model), { lr, weightDecay: 0 }),
    };
  }
  const method = getPeftMethod(technique.name);
  const config = method.config.parse({ ...technique.config(steps), peft_type: method.peftType });
  const peft = getPeftModel(model, method, config, { modelType: model.modelType });
  // The technique's optimizer: registered with the method (core's hook) or exported by its package.
  const registered = (method as { createOptimizer?: TechniquePackage['createOptimizer'] }).createOptimizer;
  const create = registered?.bind(method) ?? loaded.get(technique.packageName)?.createOptimizer;
  const optimizer = create
    ? await create(peft, { lr, weightDecay: 0 })
    : new AdamW(weightDecayGroups(peft), { lr, weightDecay: 0 });
  return { module: peft, peft, optimizer };
}

/** Bytes of the files a technique's result is saved as (adapter_config.json + weights). */
export async function adapterFileBytes(technique: Technique, peft: PeftModel): Promise<number> {
  const exporter = technique.packageName ? loaded.get(technique.packageName)?.loraExportFiles : undefined;
  const files = exporter ? await exporter(peft) : await adapterFiles(peft);
  return new TextEncoder().encode(files.config).length + files.weights.length;
}
