// `--peer`: the same step in Hugging Face PEFT on PyTorch CPU (peer/peft_step.py), where a Python
// with torch and peft exists. Looked for in order: $PEFT_BENCH_PYTHON, the repository's .venv-ref
// (the fixture generators' environment), python3 on PATH.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Technique } from './techniques.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../peer/peft_step.py', import.meta.url));
const REPO_VENV = fileURLToPath(new URL('../../../.venv-ref/bin/python', import.meta.url));

/** The first Python that imports torch, transformers and peft, or null with the reasons. */
export async function findPeerPython(): Promise<{ python: string } | { error: string }> {
  const candidates = [
    process.env.PEFT_BENCH_PYTHON,
    existsSync(REPO_VENV) ? REPO_VENV : undefined,
    'python3',
  ].filter((c): c is string => typeof c === 'string' && c.length > 0);
  const reasons: string[] = [];
  for (const python of candidates) {
    try {
      await run(python, ['-c', 'import torch, transformers, peft'], { timeout: 120_000 });
      return { python };
    } catch (error) {
      reasons.push(
        `${python}: ${((error as { stderr?: string }).stderr || (error as Error).message).trim().split('\n').pop()}`,
      );
    }
  }
  return { error: `no Python with torch, transformers and peft (${reasons.join('; ')})` };
}

/** A technique as peft_step.py takes it: PEFT's name, the bench's config and learning rate. */
function peerMethod(technique: Technique, benchSteps: number) {
  return { name: technique.peer, config: technique.config(benchSteps) ?? {}, lr: technique.lr };
}

/** The environment of a peft_step.py process: PyTorch on `threads` threads, transformers quiet. */
function peerEnv(threads: number): NodeJS.ProcessEnv {
  return { ...process.env, OMP_NUM_THREADS: String(threads), TRANSFORMERS_VERBOSITY: 'error' };
}

export interface PeerSpec {
  model: string;
  batch: number;
  length: number;
  threads: number;
  steps: number;
  warmup: number;
  seed: number;
  techniques: readonly Technique[];
  benchSteps: number;
}

export interface PeerOutput {
  torch: string;
  peft: string;
  threads: number;
  methods: Record<
    string,
    | { step_seconds_median: number; step_cpu_seconds_median: number; trainable_params: number }
    | { error: string }
  >;
}

/** Runs the PEFT step timings for the techniques PEFT has. */
export async function runPeer(python: string, spec: PeerSpec): Promise<PeerOutput> {
  const methods = spec.techniques.filter((t) => t.peer !== null).map((t) => peerMethod(t, spec.benchSteps));
  const payload = JSON.stringify({
    model: spec.model,
    batch: spec.batch,
    length: spec.length,
    threads: spec.threads,
    steps: spec.steps,
    warmup: spec.warmup,
    seed: spec.seed,
    methods,
  });
  const { stdout } = await run(python, [SCRIPT, payload], {
    timeout: 30 * 60_000,
    maxBuffer: 16 * 1024 * 1024,
    env: peerEnv(spec.threads),
  });
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as PeerOutput;
}

/** What `PeerStepper` needs: the bench shape and one technique with the bench's settings. */
export interface PeerStepSpec {
  model: string;
  batch: number;
  length: number;
  threads: number;
  seed: number;
  technique: Technique;
  benchSteps: number;
}

/** One PEFT step's wall and process CPU seconds. */
export interface PeerStepTiming {
  seconds: number;
  cpu_seconds: number;
}

/**
 * The same step in Hugging Face PEFT, one at a time on request (peft_step.py --serve), so that the
 * speed checks can interleave PEFT's steps with their own and compare them round by round.
 */
export class PeerStepper {
  readonly torch: string;
  readonly peft: string;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  /** The end of the server's stderr (for the error when it dies), and its end. */
  readonly #stderr: ServerStderr;

  private constructor(
    child: ChildProcessWithoutNullStreams,
    lines: AsyncIterator<string>,
    stderr: ServerStderr,
    ready: { torch: string; peft: string },
  ) {
    this.#child = child;
    this.#lines = lines;
    this.#stderr = stderr;
    this.torch = ready.torch;
    this.peft = ready.peft;
  }

  static async start(python: string, spec: PeerStepSpec): Promise<PeerStepper> {
    const { technique } = spec;
    if (technique.peer === null) throw new Error(`PEFT has no ${technique.name}`);
    const payload = JSON.stringify({
      model: spec.model,
      batch: spec.batch,
      length: spec.length,
      threads: spec.threads,
      seed: spec.seed,
      method: peerMethod(technique, spec.benchSteps),
    });
    const child = spawn(python, [SCRIPT, '--serve', payload], {
      env: peerEnv(spec.threads),
    });
    const stderr: ServerStderr = {
      text: '',
      closed: new Promise((resolve) => child.on('close', () => resolve())),
    };
    child.stderr.on('data', (chunk: Buffer) => {
      stderr.text = (stderr.text + chunk.toString()).slice(-2000);
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    try {
      const ready = await reply<{ ready: true; torch: string; peft: string }>(lines, child, stderr);
      return new PeerStepper(child, lines, stderr, ready);
    } catch (error) {
      child.kill();
      throw error;
    }
  }

  /** Runs one PEFT step and returns its timing. */
  async step(): Promise<PeerStepTiming> {
    this.#child.stdin.write('step\n');
    return reply<PeerStepTiming>(this.#lines, this.#child, this.#stderr);
  }

  /** Ends the Python process. */
  close(): void {
    this.#child.stdin.end();
    this.#child.kill();
  }
}

interface ServerStderr {
  text: string;
  /** Resolves once the process has exited and its streams closed. */
  closed: Promise<void>;
}

/** The next JSON line of the server's stdout (other lines are library chatter). */
async function reply<T>(
  lines: AsyncIterator<string>,
  child: ChildProcessWithoutNullStreams,
  stderr: ServerStderr,
): Promise<T> {
  for (;;) {
    const next = await lines.next();
    if (next.done) {
      await stderr.closed;
      const why = stderr.text.trim().split('\n').pop() ?? '';
      throw new Error(`peft_step.py --serve ended (exit ${child.exitCode ?? 'unknown'}): ${why}`);
    }
    if (next.value.startsWith('{')) return JSON.parse(next.value) as T;
  }
}
