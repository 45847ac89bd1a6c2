// `pnpm bench [--quick] [--methods a,b] [--steps N] [--backend cpu|wasm|webgpu] [--model dir] [--out dir] [--peer]`
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BackendName } from '@peft/core';
import { BACKENDS } from './backend.js';
import { type BenchOptions, runBench } from './bench.js';
import { BASE_MODEL_DIR } from './pretrain_command.js';
import { createProgress } from './progress.js';
import { renderHtml, renderMarkdown } from './report.js';
import type { BenchResults } from './results.js';
import { renderTextTable, summaryTable } from './summary.js';
import { TECHNIQUE_NAMES } from './techniques.js';

export const USAGE = `usage: pnpm bench [--quick] [--methods ${TECHNIQUE_NAMES.join(',')}] [--steps N]
                  [--backend cpu|wasm|webgpu] [--model <hf-dir>] [--out <dir>] [--peer] [--seed N]
                  [--lr technique=rate,...] [--threads N] [--speed-rounds N]
       pnpm bench pretrain [--help]
       pnpm bench report [<results.json>]   (re-render report.md and report.html beside it)

Fine-tunes the built-in base model (or --model, any GPT-2 or LLaMA folder) with every technique and
full fine-tuning on the same data, steps, batch (8 x 128 tokens) and seed, and writes results.json,
report.md and report.html to --out (default bench-results/).
  --quick      a short run (a few minutes): fewer steps and a smaller evaluation
  --peer       also time the same step in Hugging Face PEFT on PyTorch (needs python3 with torch and peft)
  --threads N  threads of the data-parallel speed check (default: the machine's cores; 1 skips it)
  --speed-rounds N  interleaved rounds of the speed checks (default 8, quick 2; 0 skips them)`;

/** Steps and evaluation sizes of the default and the quick run. */
export const PRESETS = {
  default: { steps: 12, evalWindows: 16, sentimentTest: 96, timingRepeats: 2, speedRounds: 8 },
  quick: { steps: 4, evalWindows: 8, sentimentTest: 32, timingRepeats: 1, speedRounds: 2 },
} as const;

export function parseBenchArgs(
  argv: string[],
  cwd = process.cwd(),
): BenchOptions & { out: string; help: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      methods: { type: 'string' },
      steps: { type: 'string' },
      backend: { type: 'string' },
      model: { type: 'string' },
      out: { type: 'string' },
      peer: { type: 'boolean', default: false },
      seed: { type: 'string' },
      lr: { type: 'string', multiple: true },
      threads: { type: 'string' },
      'speed-rounds': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const preset = values.quick ? PRESETS.quick : PRESETS.default;
  const positiveInt = (name: string, v: string | undefined, fallback: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${name} must be a positive integer (got ${v})`);
    return n;
  };
  const nonNegativeInt = (name: string, v: string | undefined, fallback: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!(Number.isInteger(n) && n >= 0))
      throw new Error(`--${name} must be a non-negative integer (got ${v})`);
    return n;
  };
  if (values.backend !== undefined && !BACKENDS.includes(values.backend as BackendName))
    throw new Error(`--backend must be one of ${BACKENDS.join(', ')} (got ${values.backend})`);
  const methods = values.methods
    ? values.methods
        .split(',')
        .map((m) => m.trim())
        .filter(Boolean)
    : [...TECHNIQUE_NAMES];
  for (const m of methods) {
    if (!TECHNIQUE_NAMES.includes(m))
      throw new Error(`--methods: unknown technique "${m}" (known: ${TECHNIQUE_NAMES.join(', ')})`);
  }
  const lr: Record<string, number> = {};
  for (const item of (values.lr ?? []).flatMap((v) => v.split(','))) {
    const [name, value] = item.split('=');
    const rate = Number(value);
    if (!name || !TECHNIQUE_NAMES.includes(name) || !(rate > 0))
      throw new Error(`--lr takes technique=rate, e.g. --lr lora=5e-3 (got "${item}")`);
    lr[name] = rate;
  }
  const command = ['pnpm bench', ...argv].join(' ');
  return {
    model: values.model ? resolve(cwd, values.model) : BASE_MODEL_DIR,
    builtIn: values.model === undefined,
    methods,
    steps: positiveInt('steps', values.steps, preset.steps),
    batch: 8,
    length: 128,
    seed: positiveInt('seed', values.seed, 42),
    evalWindows: preset.evalWindows,
    sentimentTest: preset.sentimentTest,
    timingRepeats: preset.timingRepeats,
    speedRounds: nonNegativeInt('speed-rounds', values['speed-rounds'], preset.speedRounds),
    threads: positiveInt('threads', values.threads, availableParallelism()),
    ...(values.backend ? { backend: values.backend as BackendName } : {}),
    peer: values.peer ?? false,
    quick: values.quick ?? false,
    command,
    lr,
    out: resolve(cwd, values.out ?? 'bench-results'),
    help: values.help ?? false,
  };
}

/** Writes results.json, report.md and report.html; returns their paths. */
export async function writeOutputs(results: BenchResults, out: string): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const files: [string, string][] = [
    ['results.json', `${JSON.stringify(results, null, 2)}\n`],
    ['report.md', renderMarkdown(results)],
    ['report.html', renderHtml(results)],
  ];
  for (const [name, text] of files) await writeFile(join(out, name), text);
  return files.map(([name]) => join(out, name));
}

export async function runBenchCommand(argv: string[]): Promise<void> {
  const options = parseBenchArgs(argv);
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const results = await runBench(options, {
    log: (line) => console.error(line),
    progress: (label, total) => createProgress(label, total, Math.max(1, Math.floor(total / 4))),
  });
  const paths = await writeOutputs(results, options.out);
  console.log('');
  console.log(renderTextTable(summaryTable(results)));
  console.log('');
  if (results.skipped.length > 0) {
    console.log(`not in this run: ${results.skipped.map((s) => s.name).join(', ')} (see report.md for why)`);
  }
  console.log(`${(results.wall_seconds / 60).toFixed(1)} min; wrote ${paths.join(', ')}`);
}

/** `pnpm bench report [results.json]`: rewrites report.md and report.html from a results.json. */
export async function runReportCommand(argv: string[], cwd = process.cwd()): Promise<void> {
  const path = resolve(cwd, argv[0] ?? join('bench-results', 'results.json'));
  const results = JSON.parse(await readFile(path, 'utf8')) as BenchResults;
  const out = dirname(path);
  await writeFile(join(out, 'report.md'), renderMarkdown(results));
  await writeFile(join(out, 'report.html'), renderHtml(results));
  console.log(`wrote ${join(out, 'report.md')}, ${join(out, 'report.html')}`);
}
