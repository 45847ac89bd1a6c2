// The techniques the page offers and their main settings, in PEFT's adapter_config.json names.
// The technique itself is looked up by name in core's registry (each package registers on import);
// this table only says what to show. Defaults follow the bench (apps/bench/src/techniques.ts).
import { PlaygroundError } from './errors.js';

export interface SettingField {
  /** The adapter_config.json field. */
  key: string;
  label: string;
  kind: 'int' | 'float' | 'bool' | 'list';
  default: number | boolean | string;
  min?: number;
  max?: number;
  step?: number;
  help: string;
}

export interface TechniqueInfo {
  /** Registered method name. */
  name: string;
  label: string;
  /** One line on what trains. */
  summary: string;
  /** Learning rate that works for it in a short run. */
  lr: number;
  fields: readonly SettingField[];
  /** Fixed fields of the config. */
  fixed: Readonly<Record<string, unknown>>;
}

const targetModules: SettingField = {
  key: 'target_modules',
  label: 'target modules',
  kind: 'list',
  default: '',
  help: "comma-separated layer names (c_attn, q_proj, ...); empty: PEFT's default for the model type",
};
const rank = (value: number): SettingField => ({
  key: 'r',
  label: 'rank r',
  kind: 'int',
  default: value,
  min: 1,
  max: 1024,
  help: 'rank of the low-rank update',
});
const alpha: SettingField = {
  key: 'lora_alpha',
  label: 'alpha',
  kind: 'int',
  default: 16,
  min: 1,
  max: 4096,
  help: 'scaling: the update is multiplied by alpha / r',
};

export const TECHNIQUES: readonly TechniqueInfo[] = [
  {
    name: 'lora',
    label: 'LoRA',
    summary: 'trains a low-rank update B·A beside each targeted weight (Hu et al., 2021)',
    lr: 2e-3,
    fields: [
      rank(8),
      alpha,
      {
        key: 'lora_dropout',
        label: 'dropout',
        kind: 'float',
        default: 0,
        min: 0,
        max: 0.9,
        step: 0.05,
        help: 'dropout on the input of the low-rank branch',
      },
      targetModules,
    ],
    fixed: { task_type: 'CAUSAL_LM' },
  },
  {
    name: 'lora-fa',
    label: 'LoRA-FA',
    summary: "LoRA with A frozen at its random init; only B trains, with PEFT's LoRA-FA optimizer",
    lr: 2e-3,
    fields: [rank(8), alpha, targetModules],
    fixed: { task_type: 'CAUSAL_LM', lora_dropout: 0.0 },
  },
  {
    name: 'vera',
    label: 'VeRA',
    summary:
      'shared frozen random projections; only two scaling vectors per layer train (Kopiczko et al., 2024)',
    lr: 1e-2,
    fields: [
      rank(256),
      {
        key: 'd_initial',
        label: 'd initial',
        kind: 'float',
        default: 0.1,
        min: 0,
        max: 10,
        step: 0.01,
        help: 'initial value of the scaling vector d',
      },
      targetModules,
    ],
    fixed: { task_type: 'CAUSAL_LM', vera_dropout: 0.0 },
  },
  {
    name: 'delta-lora',
    label: 'Delta-LoRA',
    summary: 'LoRA that also moves the base weights by the change of B·A once training is past K steps',
    lr: 2e-3,
    fields: [
      rank(8),
      alpha,
      {
        key: 'delta_update_ratio',
        label: 'update ratio λ',
        kind: 'float',
        default: 2,
        min: 0,
        max: 100,
        step: 0.5,
        help: 'the base weight moves by λ times the change of the scaled B·A',
      },
      {
        key: 'update_start_steps',
        label: 'start step K',
        kind: 'int',
        default: 5,
        min: 0,
        max: 100000,
        help: 'steps of plain LoRA before the base weights start moving',
      },
      targetModules,
    ],
    fixed: { task_type: 'CAUSAL_LM', lora_dropout: 0.0 },
  },
  {
    name: 'prefix',
    label: 'Prefix tuning',
    summary: 'trains key/value vectors prepended to every attention layer (Li & Liang, 2021)',
    lr: 1e-2,
    fields: [
      {
        key: 'num_virtual_tokens',
        label: 'virtual tokens',
        kind: 'int',
        default: 20,
        min: 1,
        max: 512,
        help: 'length of the trained prefix',
      },
      {
        key: 'prefix_projection',
        label: 'projection MLP',
        kind: 'bool',
        default: false,
        help: 'reparametrise the prefix through a two-layer MLP while training',
      },
    ],
    fixed: { task_type: 'CAUSAL_LM' },
  },
];

export function techniqueInfo(name: string): TechniqueInfo {
  const found = TECHNIQUES.find((t) => t.name === name);
  if (!found) throw new PlaygroundError(`unknown technique "${name}"`);
  return found;
}

/**
 * adapter_config.json fields from the form's values (strings as typed). Empty list fields are left
 * out (the technique's default applies); numbers are checked against the field's range.
 */
export function techniqueConfig(
  name: string,
  values: Readonly<Record<string, string | boolean>>,
): Record<string, unknown> {
  const technique = techniqueInfo(name);
  const config: Record<string, unknown> = { ...technique.fixed };
  for (const field of technique.fields) {
    const raw = values[field.key] ?? field.default;
    if (field.kind === 'bool') {
      config[field.key] = raw === true || raw === 'true';
      continue;
    }
    const text = String(raw).trim();
    if (field.kind === 'list') {
      const items = text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (items.length > 0) config[field.key] = items;
      continue;
    }
    const value = Number(text);
    if (text === '' || !Number.isFinite(value) || (field.kind === 'int' && !Number.isInteger(value))) {
      throw new PlaygroundError(
        `${technique.label}: ${field.label} must be ${field.kind === 'int' ? 'a whole number' : 'a number'} (got "${text}")`,
      );
    }
    if ((field.min !== undefined && value < field.min) || (field.max !== undefined && value > field.max)) {
      throw new PlaygroundError(
        `${technique.label}: ${field.label} must be between ${field.min} and ${field.max} (got ${value})`,
      );
    }
    config[field.key] = value;
  }
  return config;
}
