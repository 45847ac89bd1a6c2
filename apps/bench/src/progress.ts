import cliProgress from 'cli-progress';

/** A progress bar per run on a terminal; on a pipe or file, a plain line every `every` steps. */
export interface Progress {
  update(value: number, fields: Record<string, string | number>): void;
  stop(): void;
}

export function createProgress(label: string, total: number, every = 10): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label.padEnd(12)} {bar} {value}/{total} | {status}`,
        barsize: 24,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { status: '' });
    return {
      update: (value, fields) => bar.update(value, { status: formatFields(fields) }),
      stop: () => bar.stop(),
    };
  }
  return {
    update: (value, fields) => {
      if (value === total || value % every === 0)
        console.error(`${label} ${value}/${total} ${formatFields(fields)}`);
    },
    stop: () => {},
  };
}

function formatFields(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(3)) : v}`)
    .join(' | ');
}
