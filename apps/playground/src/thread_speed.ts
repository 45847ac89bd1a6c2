// How fast the playground trains on this machine's cores, three ways, alternated in rounds so that
// the machine's load hits each alike: WASM on one thread (core's GEMM); tfjs's threaded build with
// every core (XNNPACK runs the matmuls, core's GEMM is single-threaded); and training threads,
// this worker plus replica workers (core's DataParallelGradients, each with core's GEMM). The
// built-in base model, LoRA r=8, batch 8 x 128 tokens (the bench's shape). Prints a table; the
// figures are the median tokens/s of each run's steps after the first.
//
//   pnpm --filter @peft/playground thread-speed [--rounds 3] [--steps 6] [--threads N]
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import {
  CHROMIUM,
  errorCards,
  fillSettings,
  haveChromium,
  servePlayground,
  steps,
  train,
} from './page_driver.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '6' },
    threads: { type: 'string', default: String(availableParallelism()) },
  },
});
const rounds = Number(values.rounds);
const stepCount = Number(values.steps);
const threads = Number(values.threads);
for (const [name, value, min] of [
  ['rounds', rounds, 1],
  ['steps', stepCount, 2],
  ['threads', threads, 2],
] as const) {
  if (!(Number.isInteger(value) && value >= min))
    throw new Error(`--${name} must be a whole number >= ${min}`);
}
if (!haveChromium)
  throw new Error(`no Chromium at ${CHROMIUM} (Debian's chromium package, or set PEFT_CHROMIUM)`);

const ways = [
  { name: 'WASM, 1 thread (core GEMM)', query: 'threads=1&trainThreads=1' },
  {
    name: `WASM threaded build, ${threads} threads asked (XNNPACK where > 1)`,
    query: `threads=${threads}&trainThreads=1`,
  },
  {
    name: `training threads: ${threads} (replica workers, core GEMM)`,
    query: `threads=1&trainThreads=${threads}`,
  },
];

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
const served = await servePlayground();
try {
  const results = ways.map(() => [] as number[]);
  /** The backend as the page reports it (tfjs caps its threads at half the logical cores). */
  const labels = ways.map(() => '');
  for (let round = 0; round < rounds; round++) {
    // Rotate the order, so that no way always runs first.
    for (let k = 0; k < ways.length; k++) {
      const index = (k + round) % ways.length;
      const page = await served.browser.newPage();
      page.setDefaultTimeout(600_000);
      await page.goto(`${served.url}?backend=wasm&technique=lora&${ways[index]!.query}`);
      await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 600_000 });
      await fillSettings(page, { lr: '0.01', steps: String(stepCount), 'batch-size': '8', 'seq-len': '128' });
      await page.uncheck('#sample-around-training');
      await train(page);
      const problems = await errorCards(page);
      if (problems.length > 0)
        throw new Error(`${ways[index]!.name}: ${problems.map((p) => p.text).join('; ')}`);
      const backend = (await page.textContent('#backend')) ?? '';
      const rate = median((await steps(page)).slice(1).map((step) => step.tokensPerSecond));
      results[index]!.push(rate);
      const trainThreads = (await page.textContent('#stat-threads')) ?? '';
      labels[index] = `${backend}; training threads ${trainThreads}`;
      console.log(`round ${round + 1}: ${ways[index]!.name}: ${rate.toFixed(0)} tokens/s [${backend}]`);
      await page.close();
    }
  }
  const base = results[0]!;
  console.log(
    `\n| way | as the page ran it | tokens/s (median of ${rounds} runs) | vs 1 thread (median of the rounds' ratios) |`,
  );
  console.log('| --- | --- | ---: | ---: |');
  ways.forEach((way, i) => {
    const ratios = results[i]!.map((rate, round) => rate / base[round]!);
    const range = `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}x`;
    console.log(
      `| ${way.name} | ${labels[i]} | ${median(results[i]!).toFixed(0)} | ${median(ratios).toFixed(2)}x (${range}) |`,
    );
  });
} finally {
  await served.close();
}
