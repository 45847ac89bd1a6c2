import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BackendName } from '@peft/core';
import { BACKENDS } from './backend.js';
import { PRETRAIN_DEFAULTS, pretrain, savePretrained } from './pretrain.js';
import { createProgress } from './progress.js';

/** The committed built-in base model's folder. */
export const BASE_MODEL_DIR = fileURLToPath(new URL('../base-model/', import.meta.url));

const USAGE = `usage: pnpm bench pretrain [--out <dir>] [--steps N] [--batch N] [--length N] [--lr X] [--seed N] [--backend cpu|wasm|webgpu]
Trains the built-in base model from scratch on Moby-Dick (seeded) and writes it as a Hugging Face
folder (default: apps/bench/base-model/, the committed one).`;

export async function runPretrainCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      length: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const number = (v: string | undefined, fallback: number) => (v === undefined ? fallback : Number(v));
  if (values.backend && !BACKENDS.includes(values.backend as BackendName))
    throw new Error(`--backend must be one of ${BACKENDS.join(', ')}`);
  const options = {
    ...PRETRAIN_DEFAULTS,
    out: values.out ?? BASE_MODEL_DIR,
    steps: number(values.steps, PRETRAIN_DEFAULTS.steps),
    batch: number(values.batch, PRETRAIN_DEFAULTS.batch),
    length: number(values.length, PRETRAIN_DEFAULTS.length),
    lr: number(values.lr, PRETRAIN_DEFAULTS.lr),
    seed: number(values.seed, PRETRAIN_DEFAULTS.seed),
    ...(values.backend ? { backend: values.backend as BackendName } : {}),
  };
  const progress = createProgress('pretrain', options.steps);
  const started = performance.now();
  const result = await pretrain({
    ...options,
    log: (line) => console.error(line),
    onStep: (step, loss) =>
      progress.update(step, { loss, 's/step': (performance.now() - started) / 1000 / step }),
  });
  progress.stop();
  await savePretrained(result, options);
  const last = result.losses.slice(-20);
  console.log(
    `pretrained ${options.steps} steps in ${(result.seconds / 60).toFixed(1)} min; final loss ${(last.reduce((a, b) => a + b, 0) / last.length).toFixed(3)}; held-out perplexity ${result.heldOutPerplexity.toFixed(3)}; written to ${options.out}`,
  );
}
