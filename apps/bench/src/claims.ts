// What the literature claims for each technique (shared/methods.md sections 1-5 and 8), next to what
// this run measured. Verdicts follow fixed, stated rules; at the bench's scale (a 10.8M-parameter
// model, a few dozen steps) a "no" is a finding about this setting, not a refutation of a paper.
import {
  accuracyDifferenceMargin,
  linearGrowth,
  median,
  medianRatio,
  modelFlopsUtilisation,
} from './metrics.js';
import type { BenchResults, TechniqueResult } from './results.js';
import type { SpeedResults } from './speed.js';

export interface ClaimRow {
  method: string;
  claim: string;
  source: string;
  measured: string;
  verdict: 'yes' | 'no' | 'partly' | 'not measured' | 'no baseline';
}

/** What each technique is, per its paper (methods.md section 8 corrects popular summaries). */
export const WHAT_IT_IS: Record<string, string> = {
  full: 'every weight of the model trains (AdamW): the baseline',
  lora: 'frozen W plus a trained low-rank update s·B·A on the target layers (Hu et al. 2021, arXiv 2106.09685)',
  'lora-fa':
    'LoRA with the projection-down A frozen at its random init, only B trains ("FA" = frozen A, not feature augmentation): only A·x is kept for the backward pass (Zhang et al. 2023, arXiv 2308.03303)',
  vera: 'one pair of frozen random matrices shared by all layers; only per-layer scaling vectors b and d train (no regularisation term) (Kopiczko et al. 2024, arXiv 2310.11454)',
  'delta-lora':
    'LoRA whose frozen W also moves by lambda·(change of s·B·A) after each step past K, in every adapted layer (no layer selection) (Zi et al. 2023, arXiv 2309.02411)',
  prefix:
    'trained key/value prefixes at every attention layer; the model is frozen (Li & Liang 2021, arXiv 2101.00190)',
};

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const ratio = (x: number) => `${x >= 10 ? x.toFixed(0) : x.toFixed(2)}x`;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * Task quality next to a reference: same or better within noise. Accuracy: within the 95% margin of
 * the difference of two accuracies on the run's test sentences (about ±14 points at 96); perplexity:
 * within 2%.
 */
function quality(
  t: TechniqueResult,
  ref: TechniqueResult,
  testSentences: number,
): { measured: string; verdict: ClaimRow['verdict'] } {
  const margin = accuracyDifferenceMargin(t.eval.accuracy, ref.eval.accuracy, testSentences);
  const accOk = t.eval.accuracy >= ref.eval.accuracy - margin;
  const pplOk = t.eval.perplexity <= ref.eval.perplexity * 1.02;
  return {
    measured: `accuracy ${pct(t.eval.accuracy)} vs ${pct(ref.eval.accuracy)} (${ref.method}; noise ±${(100 * margin).toFixed(0)} points); SOTU perplexity ${t.eval.perplexity.toFixed(3)} vs ${ref.eval.perplexity.toFixed(3)}`,
    verdict: accOk && pplOk ? 'yes' : accOk || pplOk ? 'partly' : 'no',
  };
}

/**
 * Merged and unmerged forward time over the base model's: the median of the rounds' ratios, or
 * (results from before rounds were kept) the least disturbed passes'.
 */
function inferenceRatios(inference: NonNullable<SpeedResults['inference']>): {
  merged: number;
  unmerged: number;
} {
  if (inference.rounds) {
    return {
      merged: medianRatio(inference.rounds.merged, inference.rounds.base),
      unmerged: medianRatio(inference.rounds.unmerged, inference.rounds.base),
    };
  }
  return {
    merged: inference.merged_seconds / inference.base_seconds,
    unmerged: inference.unmerged_seconds / inference.base_seconds,
  };
}

export function claimRows(results: BenchResults): ClaimRow[] {
  const by = new Map(results.techniques.map((t) => [t.method, t]));
  const full = by.get('full');
  const lora = by.get('lora');
  const testSentences = results.options.sentiment_test;
  const rows: ClaimRow[] = [];
  const add = (row: ClaimRow) => rows.push(row);
  const needs = (
    ref: TechniqueResult | undefined,
    method: string,
    claim: string,
    source: string,
    f: (ref: TechniqueResult) => Omit<ClaimRow, 'method' | 'claim' | 'source'>,
  ) => {
    if (!by.has(method)) return;
    if (!ref)
      add({ method, claim, source, measured: 'reference technique not in this run', verdict: 'no baseline' });
    else add({ method, claim, source, ...f(ref) });
  };

  if (by.has('lora')) {
    const t = by.get('lora')!;
    needs(
      full,
      'lora',
      'far fewer trainable parameters (~10,000x fewer on GPT-3 175B)',
      'LoRA paper; methods.md §1',
      (f) => ({
        measured: `${ratio(f.trainable_params / t.trainable_params)} fewer (${t.trainable_params.toLocaleString('en-US')} vs ${f.trainable_params.toLocaleString('en-US')}); the ratio grows with model size`,
        verdict: f.trainable_params / t.trainable_params >= 10 ? 'yes' : 'no',
      }),
    );
    needs(
      full,
      'lora',
      '~3x less training memory (1.2 TB -> 350 GB on GPT-3)',
      'LoRA paper; methods.md §1',
      (f) => {
        const peak = f.peak_bytes / t.peak_bytes;
        const state = (f.trainable_bytes + f.optimizer_bytes) / (t.trainable_bytes + t.optimizer_bytes);
        return {
          measured: `peak tensor bytes ${ratio(peak)} lower (${mb(t.peak_bytes)} vs ${mb(f.peak_bytes)}); trainable weights + optimizer state ${ratio(state)} lower`,
          verdict: peak >= 3 ? 'yes' : peak >= 1.2 ? 'partly' : 'no',
        };
      },
    );
    needs(
      full,
      'lora',
      '~25% faster training (frozen weights need no gradient)',
      'LoRA paper; methods.md §1',
      (f) => ({
        measured: `step ${t.step_cpu_seconds_median.toFixed(2)} s vs ${f.step_cpu_seconds_median.toFixed(2)} s (${pct(t.step_cpu_seconds_median / f.step_cpu_seconds_median)} of full; CPU time)`,
        verdict:
          t.step_cpu_seconds_median <= 0.8 * f.step_cpu_seconds_median
            ? 'yes'
            : t.step_cpu_seconds_median < f.step_cpu_seconds_median
              ? 'partly'
              : 'no',
      }),
    );
    needs(
      full,
      'lora',
      'as good as full fine-tuning (E2E BLEU 70.4 vs 68.2, GPT-2 M)',
      'LoRA paper Table 3; methods.md §1',
      (f) => quality(t, f, testSentences),
    );
    const inference = results.speed?.inference;
    const inferenceRatio = inference ? inferenceRatios(inference) : null;
    add({
      method: 'lora',
      claim: 'no added inference latency once merged',
      source: 'LoRA paper; methods.md §1',
      measured:
        inference && inferenceRatio
          ? `merged forward ${ratio(inferenceRatio.merged)} of the base model's, unmerged ${ratio(inferenceRatio.unmerged)} (${inference.rounds ? `median of the ${inference.rounds.base.length} interleaved rounds' ratios` : 'least disturbed passes'}; the speed checks, issue 10)`
          : (results.speed?.skipped.inference ??
            'inference speed is measured by the speed checks (run without --speed-rounds 0)'),
      verdict: inferenceRatio ? (inferenceRatio.merged <= 1.05 ? 'yes' : 'no') : 'not measured',
    });
  }
  if (by.has('lora-fa')) {
    const t = by.get('lora-fa')!;
    needs(
      lora,
      'lora-fa',
      'up to 1.4x lower overall memory than LoRA (keeps A·x, not x, for the backward pass)',
      'LoRA-FA paper; methods.md §2, §8',
      (l) => {
        const r = l.peak_bytes / t.peak_bytes;
        return {
          measured: `peak tensor bytes ${ratio(r)} lower than LoRA (${mb(t.peak_bytes)} vs ${mb(l.peak_bytes)})`,
          verdict: r >= 1.4 ? 'yes' : r > 1.02 ? 'partly' : 'no',
        };
      },
    );
    needs(lora, 'lora-fa', 'fewer trainable parameters than LoRA (B only)', 'methods.md §2, §6', (l) => ({
      measured: `${t.trainable_params.toLocaleString('en-US')} vs ${l.trainable_params.toLocaleString('en-US')}`,
      verdict: t.trainable_params < l.trainable_params ? 'yes' : 'no',
    }));
    needs(
      full,
      'lora-fa',
      'accuracy close to full fine-tuning and LoRA',
      'LoRA-FA paper; methods.md §2',
      (f) => quality(t, f, testSentences),
    );
  }
  if (by.has('vera')) {
    const t = by.get('vera')!;
    needs(lora, 'vera', '~10x fewer trainable parameters than LoRA', 'VeRA paper; methods.md §3, §8', (l) => {
      const r = l.trainable_params / t.trainable_params;
      return {
        measured: `${ratio(r)} fewer (${t.trainable_params.toLocaleString('en-US')} vs ${l.trainable_params.toLocaleString('en-US')})`,
        verdict: r >= 10 ? 'yes' : r > 1 ? 'partly' : 'no',
      };
    });
    needs(lora, 'vera', 'same performance as LoRA (GLUE, E2E)', 'VeRA paper; methods.md §3', (l) =>
      quality(t, l, testSentences),
    );
  }
  if (by.has('delta-lora')) {
    const t = by.get('delta-lora')!;
    needs(lora, 'delta-lora', 'better than LoRA', 'Delta-LoRA paper abstract; methods.md §4', (l) =>
      quality(t, l, testSentences),
    );
    needs(
      lora,
      'delta-lora',
      'memory and step time close to LoRA (W gets no gradient, no optimizer state)',
      'Delta-LoRA paper; methods.md §4, §8',
      (l) => {
        const memory = t.peak_bytes / l.peak_bytes;
        const time = t.step_cpu_seconds_median / l.step_cpu_seconds_median;
        return {
          measured: `peak ${pct(memory)} of LoRA's, optimizer state ${mb(t.optimizer_bytes)} vs ${mb(l.optimizer_bytes)}, step ${pct(time)} of LoRA's (CPU time)`,
          verdict: memory <= 1.15 && time <= 1.15 ? 'yes' : memory <= 1.5 && time <= 1.5 ? 'partly' : 'no',
        };
      },
    );
  }
  if (by.has('prefix')) {
    const t = by.get('prefix')!;
    const share = t.trainable_params / t.all_params;
    add({
      method: 'prefix',
      claim: 'tunes ~0.1% of the parameters',
      source: 'Prefix-Tuning paper; methods.md §5',
      measured: `${(100 * share).toFixed(2)}% (${t.trainable_params.toLocaleString('en-US')} of ${t.all_params.toLocaleString('en-US')}); the share falls with model size`,
      verdict: share <= 0.002 ? 'yes' : share <= 0.02 ? 'partly' : 'no',
    });
    needs(
      full,
      'prefix',
      'matches fine-tuning (E2E BLEU 69.7 vs 68.2), better in low-data settings',
      'Prefix-Tuning paper; methods.md §5',
      (f) => quality(t, f, testSentences),
    );
  }
  for (const t of results.techniques) {
    if (t.method === 'full') continue;
    needs(
      full,
      t.method,
      'forgets less than full fine-tuning (the base weights stay put)',
      'common PEFT claim (issue 9)',
      (f) => ({
        measured: `Moby-Dick perplexity ${signed(t.forgetting_perplexity_delta)} vs ${signed(f.forgetting_perplexity_delta)} for full`,
        verdict: t.forgetting_perplexity_delta < f.forgetting_perplexity_delta ? 'yes' : 'no',
      }),
    );
  }
  return rows;
}

export interface TargetRow {
  target: string;
  measured: string;
  met: 'yes' | 'no' | 'not measured';
}

/** Generation is "flat" when its per-token time's trend grows by at most 20% across the context. */
export const GENERATION_FLAT = 1.2;

/**
 * Weak scaling beside the target's split batch: each thread on a bench batch of its own (the batch
 * per device of Hugging Face's Trainer and PyTorch's DDP), tokens per second against one thread's.
 */
function perThreadBatchNote(parallel: NonNullable<SpeedResults['data_parallel']>): string {
  const weak = parallel.per_thread_batch;
  if (!weak) return '';
  return `; with a batch per thread instead (${parallel.threads} x ${weak.rows_per_thread} rows, as Hugging Face's Trainer counts a batch per device) ${ratio(weak.median_pair_speedup)} the tokens per second (median of ${weak.seconds_all.length} pairs, shards ${weak.shard_seconds.map((s) => s.toFixed(2)).join(' / ')} s, the slowest ${pct(weak.slowest_shard_excess)} over their mean)`;
}

/**
 * The machine's own ceilings beside the two-thread ratio (each a median over the same pairs): what
 * a register-bound loop, a register-bound SIMD loop, memory-bound copies and core's matmul get from
 * the same threads, and training's share of each.
 */
function ceilingNote(parallel: NonNullable<SpeedResults['data_parallel']>): string {
  const ceilings: { what: string; speedup: number }[] = [];
  if (parallel.ceiling) {
    ceilings.push({ what: 'a register-bound loop', speedup: parallel.ceiling.median_pair_speedup });
  }
  if (parallel.simd_ceiling) {
    ceilings.push({
      what: `a register-bound SIMD loop (${parallel.simd_ceiling.fused ? 'relaxed multiply-adds' : 'multiplies and adds'})`,
      speedup: parallel.simd_ceiling.median_pair_speedup,
    });
  }
  if (parallel.stream_ceiling) {
    ceilings.push({
      what: 'copies of a 6 MiB array (memory-bound)',
      speedup: parallel.stream_ceiling.median_pair_speedup,
    });
  }
  if (parallel.matmul_ceiling) {
    const [m, k, n] = parallel.matmul_ceiling.shape;
    ceilings.push({
      what: `the matmul [${m}x${k}]@[${k}x${n}]`,
      speedup: parallel.matmul_ceiling.median_pair_speedup,
    });
  }
  if (ceilings.length === 0) return '';
  const described = ceilings.map(
    ({ what, speedup }) =>
      `${what} ${ratio(speedup)} (training reached ${pct(parallel.median_pair_speedup / speedup)} of it)`,
  );
  return `; the machine's own ceilings in the same pairs, alone vs split over ${parallel.threads} threads, median pair: ${described.join(', ')}`;
}

/** Issue 10's speed targets, from this run's CPU times (the work itself, whatever the machine's load). */
export function speedTargets(results: BenchResults): TargetRow[] {
  const by = new Map(results.techniques.map((t) => [t.method, t]));
  const lora = by.get('lora');
  const full = by.get('full');
  const rows: TargetRow[] = [];
  const threads = `${results.machine.backend}, ${results.machine.threads} thread${results.machine.threads === 1 ? '' : 's'}`;
  const speed = results.speed;
  // Ratios are judged round by round: the median over the speed checks' rounds of the two sides'
  // ratio (a round's sides run seconds apart, under much the same load, and the median is robust to
  // a lucky or unlucky round). The least disturbed repeat of each side is shown beside it. Over the
  // reference runs the round-by-round median moved less between runs than the ratio of the least
  // disturbed steps (bench-results/HISTORY.md). Without the speed checks: each technique's own run.
  const interleaved = speed?.interleaved_step_cpu_seconds ?? {};
  const rounds = speed?.interleaved_step_cpu_seconds_all ?? {};
  const paired = (top: readonly number[] | undefined, bottom: readonly number[] | undefined) =>
    top && bottom && top.length === bottom.length && top.length >= 2 ? medianRatio(top, bottom) : null;
  const stepRatio = (
    top: TechniqueResult,
    bottom: TechniqueResult,
    of = '',
  ): { value: number; measured: string } => {
    const byRound = paired(rounds[top.method], rounds[bottom.method]);
    const a = interleaved[top.method];
    const b = interleaved[bottom.method];
    if (byRound !== null && a !== undefined && b !== undefined) {
      return {
        value: byRound,
        measured: `${ratio(byRound)}${of} (median of the ${rounds[top.method]!.length} interleaved rounds' ratios; least disturbed steps ${a.toFixed(2)} s vs ${b.toFixed(2)} s, ${ratio(a / b)})`,
      };
    }
    const value = top.step_cpu_seconds_median / bottom.step_cpu_seconds_median;
    return {
      value,
      measured: `${ratio(value)}${of} (${top.step_cpu_seconds_median.toFixed(2)} s vs ${bottom.step_cpu_seconds_median.toFixed(2)} s, the task runs' median steps)`,
    };
  };
  if (lora) {
    const peak = results.machine.matmul_gflops;
    const peaks = speed?.interleaved_matmul_gflops;
    const loraRounds = rounds.lora;
    const mfuTarget = `LoRA step MFU >= 70% of the matmul peak measured in the same run (${threads})`;
    if (loraRounds && peaks && peaks.length === loraRounds.length && peaks.length >= 2) {
      const byRound = median(
        loraRounds.map((step, i) => modelFlopsUtilisation(lora.flops_per_step, step, peaks[i]! * 1e9)),
      );
      const leastDisturbed = modelFlopsUtilisation(lora.flops_per_step, interleaved.lora!, peak * 1e9);
      rows.push({
        target: mfuTarget,
        measured: `${pct(byRound)} (median over the ${loraRounds.length} interleaved rounds of LoRA's step against the matmul rate measured right after it; least disturbed step ${interleaved.lora!.toFixed(2)} s against the best peak sample ${peak.toFixed(1)} GFLOP/s: ${pct(leastDisturbed)}; the task runs' median step ${lora.step_cpu_seconds_median.toFixed(2)} s: ${pct(lora.mfu)})`,
        met: byRound >= 0.7 ? 'yes' : 'no',
      });
    } else {
      rows.push({
        target: mfuTarget,
        measured: `${pct(lora.mfu)} (the task runs' median step ${lora.step_cpu_seconds_median.toFixed(2)} s against the best peak sample ${peak.toFixed(1)} GFLOP/s)`,
        met: lora.mfu >= 0.7 ? 'yes' : 'no',
      });
    }
    const peerTarget = 'LoRA step at most 2.5x Hugging Face PEFT on PyTorch, same thread count';
    const peerRounds = speed?.interleaved_peer_lora_cpu_seconds;
    const byRound = paired(loraRounds, peerRounds);
    if (byRound !== null) {
      rows.push({
        target: peerTarget,
        measured: `${ratio(byRound)} (median of the ${peerRounds!.length} interleaved rounds' ratios, PEFT's step run right after LoRA's, CPU time; least disturbed steps ${interleaved.lora!.toFixed(2)} s vs ${Math.min(...peerRounds!).toFixed(2)} s${lora.peer ? `; the task runs' medians ${ratio(lora.peer.ratio)}` : ''})`,
        met: byRound <= 2.5 ? 'yes' : 'no',
      });
    } else if (lora.peer) {
      rows.push({
        target: peerTarget,
        measured: `${ratio(lora.peer.ratio)} (${lora.step_cpu_seconds_median.toFixed(2)} s vs ${lora.peer.step_cpu_seconds_median.toFixed(2)} s of CPU time, the two runs' median steps)`,
        met: lora.peer.ratio <= 2.5 ? 'yes' : 'no',
      });
    } else {
      rows.push({ target: peerTarget, measured: 'run with --peer', met: 'not measured' });
    }
    if (full) {
      const r = stepRatio(lora, full);
      rows.push({
        target: "LoRA's step at most 0.72x full fine-tuning's",
        measured: r.measured,
        met: r.value <= 0.72 ? 'yes' : 'no',
      });
    }
    for (const t of results.techniques) {
      if (t.method === 'full' || t.method === 'lora') continue;
      const r = stepRatio(t, lora, " LoRA's");
      rows.push({
        target: `${t.method} step within 15% of LoRA's`,
        measured: r.measured,
        met: r.value <= 1.15 ? 'yes' : 'no',
      });
    }
  }
  const parallel = speed?.data_parallel;
  const goal = (n: number) => (n === 2 ? '1.8' : (0.9 * n).toFixed(1));
  rows.push(
    parallel
      ? {
          target: `${parallel.threads} threads give >= ${goal(parallel.threads)}x the 1-thread throughput (LoRA, data-parallel workers)`,
          measured: `${ratio(parallel.median_pair_speedup)} (median of ${parallel.one_thread_seconds_all.length} step pairs, wall; least disturbed steps ${parallel.one_thread_seconds.toFixed(2)} s vs ${parallel.threads_seconds.toFixed(2)} s, ${ratio(parallel.speedup)}; ${parallel.work_overhead >= 0 ? '+' : ''}${pct(parallel.work_overhead)} work; shards ${parallel.shard_seconds.map((s) => s.toFixed(2)).join(' / ')} s, waiting ${pct(parallel.wait_fraction)} of the step${parallel.slowest_shard_excess !== undefined ? `, the slowest shard ${pct(parallel.slowest_shard_excess)} over their mean` : ''}; load ${parallel.load_average[0].toFixed(1)} -> ${parallel.load_average[1].toFixed(1)}${ceilingNote(parallel)}${perThreadBatchNote(parallel)})`,
          met: parallel.median_pair_speedup >= 0.9 * parallel.threads ? 'yes' : 'no',
        }
      : {
          target: '2 threads give >= 1.8x the 1-thread throughput',
          measured: speed?.skipped['data parallel'] ?? 'run without --speed-rounds 0',
          met: 'not measured',
        },
  );
  const inference = speed?.inference;
  if (inference) {
    const byRound = inference.rounds !== undefined;
    const { merged, unmerged } = inferenceRatios(inference);
    const leastDisturbed = `merged ${ratio(inference.merged_seconds / inference.base_seconds)}, unmerged ${ratio(inference.unmerged_seconds / inference.base_seconds)}`;
    rows.push({
      target: 'merged adapter at the base model inference speed, unmerged within 10%',
      measured: byRound
        ? `merged ${ratio(merged)}, unmerged ${ratio(unmerged)} of the base model's forward (median of the ${inference.rounds!.base.length} interleaved rounds' ratios, LoRA r=8; least disturbed passes ${leastDisturbed}, base ${inference.base_seconds.toFixed(2)} s)`
        : `${leastDisturbed} of the base model's forward (${inference.base_seconds.toFixed(2)} s, LoRA r=8, interleaved)`,
      met: merged <= 1.05 && unmerged <= 1.1 ? 'yes' : 'no',
    });
  } else {
    rows.push({
      target: 'merged adapter at the base model inference speed, unmerged within 10%',
      measured: speed?.skipped.inference ?? 'run without --speed-rounds 0',
      met: 'not measured',
    });
  }
  const generation = speed?.generation;
  if (generation && generation.length > 2) {
    // The first bucket holds the first tokens' one-off costs; the trend is judged on the others.
    const later = generation.slice(1);
    const growth = linearGrowth(
      later.map((g) => (g.positions[0] + g.positions[1]) / 2),
      later.map((g) => g.milliseconds),
    );
    const first = generation[0]!;
    const last = generation[generation.length - 1]!;
    rows.push({
      target: 'generation per-token time flat in the sequence length (KV cache)',
      measured: `${first.milliseconds.toFixed(1)} ms a token at positions ${first.positions.join('-')}, ${last.milliseconds.toFixed(1)} ms at ${last.positions.join('-')}; trend past the first 32 positions ${growth >= 0 ? '+' : ''}${pct(growth)} across the context (least squares over ${later.length} buckets of 32, CPU)`,
      met: growth <= GENERATION_FLAT - 1 ? 'yes' : 'no',
    });
  } else {
    rows.push({
      target: 'generation per-token time flat in the sequence length (KV cache)',
      measured: speed?.skipped.generation ?? 'run without --speed-rounds 0',
      met: 'not measured',
    });
  }
  return rows;
}
