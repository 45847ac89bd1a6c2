// report.md and a self-contained report.html (chart.js inlined from node_modules, results embedded).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { claimRows, speedTargets, WHAT_IT_IS } from './claims.js';
import type { BenchResults, MachineInfo } from './results.js';
import { renderMarkdownTable, summaryTable, type Table } from './summary.js';

/** The peak's samples along the run (absent from older results). */
function peakSamples(samples: readonly number[] | undefined): string {
  if (!samples || samples.length === 0) return '';
  return ` (the best of ${samples.length} samples along the run: ${samples.map((g) => g.toFixed(1)).join(', ')})`;
}

/** The backend, and for wasm how it runs: "wasm (SIMD on with relaxed SIMD, 1 thread)". */
export function describeBackend(
  m: Pick<MachineInfo, 'backend' | 'simd' | 'relaxed_simd' | 'threads'>,
): string {
  if (m.backend !== 'wasm') return m.backend;
  const simd = `SIMD ${m.simd ? 'on' : 'off'}${m.relaxed_simd ? ' with relaxed SIMD' : ''}`;
  return `${m.backend} (${simd}, ${m.threads} thread${m.threads === 1 ? '' : 's'})`;
}

function machineLine(r: BenchResults): string {
  const m = r.machine;
  return `${describeBackend(m)}, matmul peak ${m.matmul_gflops.toFixed(1)} GFLOP/s on [${m.matmul_shape.join('x')}]${peakSamples(m.matmul_gflops_samples)}; ${m.cpu}, ${m.cores} cores, ${m.platform}, Node ${m.node}, tfjs ${m.tfjs}; load average ${m.load_average[0].toFixed(1)} -> ${m.load_average[1].toFixed(1)}`;
}

function claimsTable(r: BenchResults): Table {
  return {
    header: ['technique', 'claim', 'source', 'measured here', 'holds here?'],
    rows: claimRows(r).map((c) => [c.method, c.claim, c.source, c.measured, c.verdict]),
  };
}

function targetsTable(r: BenchResults): Table {
  return {
    header: ['issue 10 target', 'measured here', 'met?'],
    rows: speedTargets(r).map((t) => [t.target, t.measured, t.met]),
  };
}

function settingsTable(r: BenchResults): Table {
  return {
    header: ['technique', 'what it is', 'bench settings', 'config (PEFT names)'],
    rows: r.techniques.map((t) => [
      t.method,
      WHAT_IT_IS[t.method] ?? '',
      t.notes,
      t.config ? JSON.stringify(t.config) : '—',
    ]),
  };
}

const HOW_MEASURED = [
  'Every technique trains from the same base model, on the same seeded batches of the bench shape, with the same steps, schedule (warm-up a tenth of the steps, then cosine), gradient clipping 1.0 and seed; each task is its own run from a fresh copy of the model.',
  'Sentiment: "<sentence>\\nSentiment: positive|negative", loss on the label tokens only; a test sentence is classified by comparing the log-likelihood of the two label continuations. SOTU: language modelling on random windows of the training speeches; perplexity on fixed windows of held-out speeches. Forgetting: Moby-Dick held-out perplexity after the SOTU run minus the base model\'s.',
  'Accuracy noise: each accuracy has its 95% Wilson interval over the test sentences in brackets (at 96 sentences about ±10 points), and the claims count an accuracy as matching another within the 95% margin of their difference. Two reference rows put the accuracies on a scale: a word-presence naive Bayes classifier trained on exactly the sentences the sentiment runs see (no pretraining: what those labelled sentences support by themselves) and always answering the majority class.',
  'weights+optimizer: bytes of the trainable weights plus the optimizer state (core measureMemory). Peak tensors: the most bytes held by live tensors at any point of the first step (core measureStepPeak), frozen base included.',
  "Step s: median wall time of the SOTU run's steps after two warm-up steps, and in brackets the median CPU time of the process during a step (tfjs runs single-threaded in Node, so CPU time is the work itself, without the time spent waiting for a core on a shared machine); speed ratios between techniques and against PEFT use CPU time. fwd / bwd / opt: CPU time of a forward pass alone, of a forward+backward minus the forward, and of the full step minus the forward+backward (norm, clipping, optimizer, technique hooks); the forward and forward+backward are timed before steps 3, 4, ... (alternating), medians.",
  'MFU: FLOPs the step needs (forward 2 per weight per token plus attention, the backward through the activations the same again, weight gradients of trained base weights, 6 per trainable adapter parameter per token) per CPU second of the step, over the plain matMul rate (best CPU time of several runs, sampled at the start, before each technique and at the end of the run). results.json also has mfu_wall, from wall time.',
  'Adapter file: adapter_config.json + adapter_model.safetensors as PEFT writes them (full fine-tuning: the whole model in float32).',
  "Speed checks (issue 10; results.json `speed`), each side by side in one process so that the machine's load hits both sides alike, repeated in rounds; a target is judged on the median over the rounds of the two sides' ratio (a round's sides run seconds apart, under much the same load), with the least disturbed repeat of each side beside it (the same work every time: interference only adds time): every technique's SOTU step interleaved round-robin with the others' after two warm-up steps each (CPU time), with the matmul rate measured right after LoRA's step (16 products of the peak's shape, their total CPU time: the MFU target's peak under the load of the moment) and, with --peer, Hugging Face PEFT's LoRA step run right after it (a Python process kept running, one step per request; CPU time); the base model's forward pass with a LoRA adapter (r=8, random B) disabled, unmerged and merged, interleaved (CPU time); greedy generation over the whole context with the KV cache, CPU time per token in buckets of 32 positions, the least disturbed of one run a round (after 2 warm-up runs) per bucket; LoRA trained on one thread and with core's DataParallelGradients on --threads threads (this thread and worker threads, each its own backend and model replica; the batch split, gradients averaged by tokens) from the same weights on the same batches, in alternating blocks of two steps per side with the second step of each block timed (steps back to back, as in training): wall time per step is the throughput, the CPU time of all threads over one thread's is the extra work, each thread's seconds on its shard, the share of the step spent waiting for the slowest and how far the slowest shard ran over the shards' mean show the balance, and the two runs' losses must agree; after each pair the machine's own ceilings are timed the same way, on this thread alone, then split over the same threads (on a shared virtual machine two busy vCPUs can each run slower than one alone): a register-bound loop (what the cores give), a register-bound WebAssembly SIMD loop (ten chains of f32x4 multiply-adds on locals, relaxed SIMD's where core's GEMM has it: what the cores give to SIMD work, without memory traffic), copies of a 6 MiB array (memory-bound work, each thread its own arrays, past the L2: what the memory the cores share gives) and core's matmul on the peak's shape, each thread its own backend (the kernel of most of a step, with its traffic through caches other machines share).",
];

export function renderMarkdown(r: BenchResults): string {
  const lines = [
    '# @peft bench report',
    '',
    `${r.created} — \`${r.command}\` — ${(r.wall_seconds / 60).toFixed(1)} min${r.options.quick ? ' (quick)' : ''}`,
    '',
    `- Machine: ${machineLine(r)}`,
    `- Model: ${r.model.built_in ? 'the built-in base model' : r.model.path} (${r.model.model_type}, ${r.model.params.toLocaleString('en-US')} parameters)`,
    `- Shape: batch ${r.options.batch} x ${r.options.length} tokens, ${r.options.steps} steps per task, seed ${r.options.seed}; ${r.options.sentiment_test} sentiment test sentences, ${r.options.eval_windows} held-out windows per perplexity`,
    '',
    '## Results',
    '',
    renderMarkdownTable(summaryTable(r)),
    '',
  ];
  if (r.skipped.length > 0) {
    lines.push('Not in this run:', '', ...r.skipped.map((s) => `- ${s.name}: ${s.reason}`), '');
  }
  if (r.peer) {
    lines.push(
      'error' in r.peer
        ? `--peer: ${r.peer.error}`
        : `vs PEFT: our step's median CPU time over Hugging Face PEFT ${r.peer.peft}'s on PyTorch ${r.peer.torch} CPU, ${r.peer.threads} thread(s), same model, shape and batch (results.json has the wall-time ratio too).`,
      '',
    );
  }
  lines.push(
    '## Speed targets (issue 10)',
    '',
    renderMarkdownTable(targetsTable(r), true),
    '',
    '## What the literature claims, and what this run measured',
    '',
    renderMarkdownTable(claimsTable(r), true),
    '',
    '## Settings',
    '',
    renderMarkdownTable(settingsTable(r), true),
    '',
    '## How it is measured',
    '',
    ...HOW_MEASURED.map((l) => `- ${l}`),
    '',
  );
  return lines.join('\n');
}

const require = createRequire(import.meta.url);

/** chart.js's UMD bundle from node_modules, to inline in the page. */
export function chartJsSource(): string {
  const main = require.resolve('chart.js'); // dist/chart.cjs
  return readFileSync(join(dirname(main), 'chart.umd.min.js'), 'utf8');
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlTable(table: Table): string {
  return `<table><thead><tr>${table.header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${table.rows
    .map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** JSON safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

const CHARTS_SCRIPT = `
const R = JSON.parse(document.getElementById('results').textContent);
const T = R.techniques;
const colors = ['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#edc948','#b07aa1','#ff9da7'];
const names = T.map(t => t.method);
const MiB = 1024 * 1024;
function lossChart(id, task) {
  new Chart(document.getElementById(id), { type: 'line',
    data: { datasets: T.map((t, i) => ({ label: t.method, data: t.losses[task].map((y, x) => ({ x: x + 1, y })),
      borderColor: colors[i % colors.length], backgroundColor: colors[i % colors.length], pointRadius: 0, tension: 0.2 })) },
    options: { animation: false, parsing: true, scales: { x: { type: 'linear', title: { display: true, text: 'step' } },
      y: { title: { display: true, text: 'training loss (nats/token)' } } },
      plugins: { title: { display: true, text: task === 'sotu' ? 'Loss: SOTU domain adaptation' : 'Loss: sentiment (label tokens)' } } } });
}
function bars(id, title, datasets, yTitle, extra) {
  new Chart(document.getElementById(id), { type: 'bar', data: { labels: names, datasets },
    options: Object.assign({ animation: false, plugins: { title: { display: true, text: title } },
      scales: { y: { title: { display: true, text: yTitle } } } }, extra || {}) });
}
lossChart('loss-sentiment', 'sentiment');
lossChart('loss-sotu', 'sotu');
bars('memory', 'Memory (MiB)', [
  { label: 'trainable weights', data: T.map(t => t.trainable_bytes / MiB), backgroundColor: colors[0] },
  { label: 'optimizer state', data: T.map(t => t.optimizer_bytes / MiB), backgroundColor: colors[1] },
  { label: 'peak live tensors in a step', data: T.map(t => t.peak_bytes / MiB), backgroundColor: colors[2] },
], 'MiB');
bars('speed', 'Step time split (CPU s)', [
  { label: 'forward', data: T.map(t => t.time_split ? t.time_split.forward_seconds : null), backgroundColor: colors[0] },
  { label: 'backward', data: T.map(t => t.time_split ? t.time_split.backward_seconds : null), backgroundColor: colors[1] },
  { label: 'optimizer and the rest', data: T.map(t => t.time_split ? t.time_split.optimizer_seconds : null), backgroundColor: colors[2] },
], 'CPU seconds', { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: 'CPU seconds' } } } });
bars('throughput', 'Throughput and MFU', [
  { label: 'tokens/s', data: T.map(t => t.tokens_per_second), backgroundColor: colors[4], yAxisID: 'y' },
  { label: 'MFU (%)', data: T.map(t => 100 * t.mfu), backgroundColor: colors[5], yAxisID: 'y1' },
], 'tokens/s', { scales: { y: { title: { display: true, text: 'tokens/s' } },
  y1: { position: 'right', title: { display: true, text: 'MFU %' }, grid: { drawOnChartArea: false } } } });
bars('scores', 'Task scores', [
  { label: 'sentiment accuracy (%)', data: T.map(t => 100 * t.eval.accuracy), backgroundColor: colors[3], yAxisID: 'y' },
  { label: 'SOTU perplexity', data: T.map(t => t.eval.perplexity), backgroundColor: colors[6], yAxisID: 'y1' },
  { label: 'forgetting: Moby-Dick Δ perplexity', data: T.map(t => t.forgetting_perplexity_delta), backgroundColor: colors[7], yAxisID: 'y1' },
], 'accuracy %', { scales: { y: { min: 0, max: 100, title: { display: true, text: 'accuracy %' } },
  y1: { position: 'right', title: { display: true, text: 'perplexity' }, grid: { drawOnChartArea: false } } } });
`;

export function renderHtml(r: BenchResults, chartJs = chartJsSource()): string {
  const skipped = r.skipped.length
    ? `<p>Not in this run: ${r.skipped.map((s) => `${escapeHtml(s.name)} (${escapeHtml(s.reason)})`).join('; ')}</p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>@peft bench report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: top; }
th:first-child, td:first-child, td.text { text-align: left; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5em; }
.grid > div { position: relative; height: 340px; }
.claims td { text-align: left; }
</style></head><body>
<h1>@peft bench report</h1>
<p>${escapeHtml(r.created)} — <code>${escapeHtml(r.command)}</code> — ${(r.wall_seconds / 60).toFixed(1)} min${r.options.quick ? ' (quick)' : ''}</p>
<p>Machine: ${escapeHtml(machineLine(r))}<br>Model: ${escapeHtml(r.model.built_in ? 'the built-in base model' : r.model.path)} (${escapeHtml(r.model.model_type)}, ${r.model.params.toLocaleString('en-US')} parameters); batch ${r.options.batch} x ${r.options.length}, ${r.options.steps} steps per task</p>
<h2>Results</h2>
${htmlTable(summaryTable(r))}
${skipped}
<div class="grid">
<div><canvas id="loss-sentiment"></canvas></div>
<div><canvas id="loss-sotu"></canvas></div>
<div><canvas id="memory"></canvas></div>
<div><canvas id="speed"></canvas></div>
<div><canvas id="throughput"></canvas></div>
<div><canvas id="scores"></canvas></div>
</div>
<h2>Speed targets (issue 10)</h2>
<div class="claims">${htmlTable(targetsTable(r))}</div>
<h2>What the literature claims, and what this run measured</h2>
<div class="claims">${htmlTable(claimsTable(r))}</div>
<h2>Settings</h2>
<div class="claims">${htmlTable(settingsTable(r))}</div>
<h2>How it is measured</h2>
<ul>${HOW_MEASURED.map((l) => `<li>${escapeHtml(l)}</li>`).join('')}</ul>
<p>Charts drawn with Chart.js (MIT), inlined; the results are embedded below as JSON.</p>
<script id="results" type="application/json">${scriptJson(r)}</script>
<script>${chartJs.replace(/<\/script/gi, '<\\/script')}</script>
<script>${CHARTS_SCRIPT}</script>
</body></html>
`;
}
