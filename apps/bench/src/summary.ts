// The summary table, shared by the terminal, report.md and report.html.
import type { BenchResults, TechniqueResult } from './results.js';

export interface Table {
  header: string[];
  rows: string[][];
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** An accuracy with its 95% interval when known: `53.1% (43-63)`. */
export function formatAccuracy(value: number, interval?: [number, number]): string {
  const main = `${(100 * value).toFixed(1)}%`;
  if (!interval) return main;
  return `${main} (${(100 * interval[0]).toFixed(0)}-${(100 * interval[1]).toFixed(0)})`;
}

function split(t: TechniqueResult): string {
  const s = t.time_split;
  if (!s) return 'n/a';
  return `${s.forward_seconds.toFixed(2)} / ${s.backward_seconds.toFixed(2)} / ${s.optimizer_seconds.toFixed(2)}`;
}

export function summaryTable(results: BenchResults): Table {
  const withPeer = results.techniques.some((t) => t.peer !== null);
  const header = [
    'technique',
    'trainable params',
    'weights+optimizer',
    'peak tensors',
    'step s wall (CPU)',
    'tokens/s',
    'MFU',
    'fwd / bwd / opt CPU s',
    'sentiment acc',
    'SOTU ppl',
    'forgetting Δppl',
    'adapter file',
    ...(withPeer ? ['vs PEFT (PyTorch)'] : []),
  ];
  const rows = results.techniques.map((t) => [
    t.method,
    `${formatCount(t.trainable_params)} (${((100 * t.trainable_params) / t.all_params).toFixed(2)}%)`,
    formatBytes(t.trainable_bytes + t.optimizer_bytes),
    formatBytes(t.peak_bytes),
    `${t.step_seconds_median.toFixed(2)} (${t.step_cpu_seconds_median.toFixed(2)})`,
    t.tokens_per_second.toFixed(0),
    `${(100 * t.mfu).toFixed(1)}%`,
    split(t),
    formatAccuracy(t.eval.accuracy, t.eval.accuracy_interval),
    t.eval.perplexity.toFixed(3),
    `${t.forgetting_perplexity_delta >= 0 ? '+' : ''}${t.forgetting_perplexity_delta.toFixed(3)}`,
    formatBytes(t.adapter_bytes),
    ...(withPeer
      ? [t.peer ? `${t.peer.ratio.toFixed(2)}x (${t.peer.step_cpu_seconds_median.toFixed(2)} s)` : 'n/a']
      : []),
  ]);
  const b = results.baseline;
  rows.unshift([
    'base (no training)',
    '0',
    '',
    '',
    '',
    '',
    '',
    '',
    formatAccuracy(b.accuracy, b.accuracy_interval),
    b.perplexity.toFixed(3),
    `(Moby ppl ${b.moby_perplexity.toFixed(3)})`,
    '',
    ...(withPeer ? [''] : []),
  ]);
  const reference = results.sentiment_reference;
  if (reference) {
    // Rows with only a label and a sentiment accuracy.
    const accuracyColumn = header.indexOf('sentiment acc');
    const referenceRow = (label: string, accuracyCell: string) =>
      header.map((_, i) => (i === 0 ? label : i === accuracyColumn ? accuracyCell : ''));
    rows.push(
      referenceRow(
        `word naive Bayes on the same ${reference.training_sentences} sentences`,
        formatAccuracy(reference.word_naive_bayes_accuracy, reference.word_naive_bayes_interval),
      ),
      referenceRow('always the majority class', formatAccuracy(reference.majority_class_accuracy)),
    );
  }
  return { header, rows };
}

/** Fixed-width text for the terminal. */
export function renderTextTable(table: Table): string {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(table.header), widths.map((w) => '-'.repeat(w)).join('  '), ...table.rows.map(line)].join(
    '\n',
  );
}

/** A GitHub-flavoured markdown table; numbers right-aligned unless `textColumns`. */
export function renderMarkdownTable(table: Table, textColumns = false): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [
    `| ${table.header.map(esc).join(' | ')} |`,
    `|${table.header.map((_, i) => (i === 0 || textColumns ? '---' : '---:')).join('|')}|`,
    ...table.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
