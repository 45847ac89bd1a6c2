// What the technique packages' fixture scripts (fixtures/write_ours.ts) share: a few training steps on
// seeded token batches so that an adapter matters, and an `ours-*` folder written the way
// generate_fixtures.py --check-ours reads it (adapter files plus expected.json with our logits).
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, manualSeed, type Optimizer, type PeftModel, Trainer } from '@peft/core';
import { saveAdapter } from '@peft/core/node';
import type { CausalLM } from '@peft/models';
import { causalLMLoss, randomTokenIds } from './causal_lm.js';
import { expectedHeader, fixtureModelName, loadFixtureModel, roundedLogits } from './model_fixtures.js';

/** Trains `peft` for `steps` steps with `optimizer`, batch i being random token ids `[2, 8]` from `seed·100 + i`. */
export async function trainOnRandomTokens(
  peft: PeftModel<CausalLM>,
  optimizer: Optimizer,
  steps: number,
  seed: number,
): Promise<void> {
  const model = peft.model;
  const vocab = model.config.vocab_size as number;
  const trainer = new Trainer({
    module: peft,
    loss: (ids: number[][]) => causalLMLoss(model, ids),
    optimizer,
  });
  for (let step = 0; step < steps; step++)
    await trainer.trainStep(randomTokenIds(vocab, 2, 8, seed * 100 + step));
  trainer.dispose();
}

/** How a technique's `ours-*` fixtures are made. */
export interface OursTechnique<C> {
  /** Registered name (`"lora"`). */
  name: string;
  /** Wraps a model with an adapter (`getLoraModel`). */
  wrap(model: CausalLM, config: C): PeftModel<CausalLM>;
  /** A complete config from the fields set (`loraConfig`), for an added adapter. */
  config(fields: C): unknown;
  /** AdamW's learning rate for the three training steps. */
  lr: number;
  /** Changes the token ids `[2, 7]` the logits are recorded for, and gives their attention mask. */
  inputs?(inputIds: number[][]): { attentionMask: number[][] };
}

/** One `ours-*` fixture: adapters trained here on a model fixture, to be loaded by Hugging Face PEFT. */
export interface OursCase<C> {
  /** Folder name under the fixtures folder (`ours-gpt2`). */
  name: string;
  /** Model fixture of @peft/models (`gpt2-tiny`). */
  base: string;
  /** Seeds the adapter's initialisation, the dropout masks and the token ids. */
  seed: number;
  /** The adapter trained for three steps (so that it is no longer the identity). */
  config: C;
  /** A second adapter, `extra`, added after training and left as initialised. */
  extra?: C;
}

/**
 * Writes `folder/<case name>` for each case: every adapter saved as PEFT's files, and expected.json
 * with our logits per adapter for seeded token ids.
 */
export async function writeOursFixtures<C>(
  folder: string,
  technique: OursTechnique<C>,
  cases: readonly OursCase<C>[],
): Promise<void> {
  for (const c of cases) await writeOursFixture(folder, technique, c);
}

async function writeOursFixture<C>(
  folder: string,
  technique: OursTechnique<C>,
  c: OursCase<C>,
): Promise<void> {
  manualSeed(c.seed);
  const model = await loadFixtureModel(c.base);
  const vocab = model.config.vocab_size as number;
  const peft = technique.wrap(model, c.config);
  peft.train();
  await trainOnRandomTokens(peft, new AdamW(peft.namedParameters(), { lr: technique.lr }), 3, c.seed);
  if (c.extra) peft.addAdapter('extra', technique.name, technique.config(c.extra));
  peft.eval();

  const inputIds = randomTokenIds(vocab, 2, 7, c.seed);
  const mask = technique.inputs?.(inputIds);
  const adapters: Record<string, { folder: string; logits: number[][][] }> = {};
  for (const adapter of peft.adapterNames()) {
    peft.setAdapter(adapter);
    const logits = model.forward({ inputIds, ...(mask ? { attentionMask: mask.attentionMask } : {}) }).logits;
    adapters[adapter] = { folder: adapter === 'default' ? '.' : adapter, logits: roundedLogits(logits) };
  }
  peft.setAdapter('default');

  const out = join(folder, c.name);
  rmSync(out, { recursive: true, force: true });
  await saveAdapter(peft, out, { baseModelNameOrPath: fixtureModelName(c.base) });
  const expected = {
    ...expectedHeader(c.base),
    input_ids: inputIds,
    ...(mask ? { attention_mask: mask.attentionMask } : {}),
    adapters,
  };
  writeFileSync(join(out, 'expected.json'), `${JSON.stringify(expected)}\n`);
  console.log(
    `${c.name}: adapters ${Object.keys(adapters).join(', ')}; ${peft.trainableParametersSummary()}`,
  );
}
