// Writing the command's output to stdout with back-pressure, so that large outputs (the logits of a
// long batch) stream instead of being built as one string, and a closed pipe (`| head`) ends quietly.

let closed = false;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  closed = true;
});

/** Writes `text` to stdout, waiting while the pipe is full. */
export async function writeStdout(text: string): Promise<void> {
  if (closed || text === '') return;
  if (!process.stdout.write(text)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        process.stdout.off('drain', done);
        process.stdout.off('error', done);
        resolve();
      };
      process.stdout.on('drain', done);
      process.stdout.on('error', done);
    });
  }
}

/** Resolves once everything written to stdout has been handed to the operating system. */
export function flushStdout(): Promise<void> {
  if (closed) return Promise.resolve();
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}

/** `1234567` as `1,234,567`. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
