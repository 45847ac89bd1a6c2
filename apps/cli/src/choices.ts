// Option values that the command line checks before any heavy module (tfjs, the models) is loaded.
import type { BackendName } from '@peft/core';

export const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const satisfies readonly BackendName[];

/** Storage dtypes `merge --dtype` writes, by their config.json names. */
export const MERGE_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type MergeDtype = (typeof MERGE_DTYPES)[number];

/** Learning-rate schedules of `train` (transformers' lr_scheduler_type names). */
export const LR_SCHEDULERS = ['constant', 'linear', 'cosine'] as const;
export type LrScheduler = (typeof LR_SCHEDULERS)[number];
