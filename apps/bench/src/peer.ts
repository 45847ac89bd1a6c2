// `--peer`: the same step in Hugging Face PEFT on PyTorch CPU (peer/peft_step.py), where a Python
// with torch and peft exists. Looked for in order: $PEFT_BENCH_PYTHON, the repository's .venv-ref
// (the fixture generators' environment), python3 on PATH.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
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
  const methods = spec.techniques
    .filter((t) => t.peer !== null)
    .map((t) => ({ name: t.peer, config: t.config(spec.benchSteps) ?? {}, lr: t.lr }));
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
    env: { ...process.env, OMP_NUM_THREADS: String(spec.threads), TRANSFORMERS_VERBOSITY: 'error' },
  });
  const last = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as PeerOutput;
}
