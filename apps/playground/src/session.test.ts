// The worker's logic in Node (cpu backend): every technique trains on a tiny random GPT-2, the
// adapter goes out as a zip and comes back onto a fresh base with the same generations; errors read
// as the page shows them.
import { initBackend } from '@peft/core';
import { nodeDataParallelWorkers } from '@peft/core/node';
import { saveModelFiles } from '@peft/models';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeError } from './errors.js';
import type { SampleSettings, TrainSettings } from './protocol.js';
import { type ModelSource, Session, type TrainControl } from './session.js';
import { TECHNIQUES, techniqueConfig } from './techniques.js';

const TINY = {
  model_type: 'gpt2',
  vocab_size: 256,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  n_positions: 64,
  resid_pdrop: 0,
  embd_pdrop: 0,
  attn_pdrop: 0,
};
const random: ModelSource = { kind: 'random', label: 'tiny-random-gpt2', config: TINY };
const TEXT = 'the cat sat on the mat. '.repeat(40);
const SAMPLE: SampleSettings = { prompt: 'the cat', maxNewTokens: 8, temperature: 0, seed: 0 };

const running: TrainControl = { paused: false, stopped: false, whilePaused: async () => {} };

function settings(technique: string, overrides: Partial<TrainSettings> = {}): TrainSettings {
  const info = TECHNIQUES.find((t) => t.name === technique)!;
  return {
    technique,
    config: techniqueConfig(technique, technique === 'delta-lora' ? { update_start_steps: '2' } : {}),
    lr: info.lr * 5,
    steps: 6,
    batchSize: 2,
    seqLen: 16,
    warmupSteps: 0,
    weightDecay: 0,
    maxGradNorm: 1,
    seed: 0,
    ...overrides,
  };
}

beforeAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('Session', () => {
  for (const technique of TECHNIQUES.map((t) => t.name)) {
    it(`trains ${technique}, exports a PEFT zip and loads it back with the same generations`, async () => {
      const session = new Session();
      await session.loadModel(random);
      const losses: number[] = [];
      const samples: Record<string, string> = {};
      const end = await session.train(settings(technique), TEXT, SAMPLE, running, {
        step: (s) => losses.push(s.loss),
        sample: (phase, text, done) => {
          if (done) samples[phase] = text;
        },
      });
      expect(end).toMatchObject({ reason: 'done', steps: 6 });
      expect(losses).toHaveLength(6);
      expect(losses[5]!).toBeLessThan(losses[0]!);
      expect(Object.keys(samples).sort()).toEqual(['after', 'before']);
      const trained = await session.generate(SAMPLE);
      expect(trained).toBe(samples.after);

      const zip = await session.exportAdapter();
      const entries = unzipSync(zip.bytes);
      const folder = `tiny-random-gpt2-${technique}-adapter`;
      expect(
        Object.keys(entries)
          .filter((name) => !name.endsWith('/'))
          .sort(),
      ).toEqual(
        ['README.md', 'adapter_config.json', 'adapter_model.safetensors'].map((f) => `${folder}/${f}`),
      );
      const config = JSON.parse(new TextDecoder().decode(entries[`${folder}/adapter_config.json`]));
      expect(config.base_model_name_or_path).toBe('tiny-random-gpt2');
      expect(config.inference_mode).toBe(true);

      const info = await session.loadAdapter(new Map([[zip.fileName, zip.bytes]]));
      expect(info.peftType).toBe(config.peft_type);
      expect(await session.generate(SAMPLE)).toBe(trained);
      session.dispose();
    });
  }

  for (const technique of TECHNIQUES.map((t) => t.name)) {
    it(`trains ${technique} on two threads (a replica worker) exactly as on one`, async () => {
      const one = new Session();
      const two = new Session({
        replicas: {
          startWorker: nodeDataParallelWorkers(new URL('./replica.ts', import.meta.url)),
          backend: 'cpu',
          cores: 2,
        },
      });
      const runs: { losses: number[]; threads: number; params: Map<string, Float32Array> }[] = [];
      for (const session of [one, two]) {
        await session.loadModel(random);
        const losses: number[] = [];
        let threads = 0;
        await session.train(settings(technique), TEXT, null, running, {
          trainStart: (start) => {
            threads = start.threads;
          },
          step: (s) => losses.push(s.loss),
        });
        const params = new Map(
          [...session.peft!.namedParameters()].map(([name, p]) => [name, p.value.dataSync() as Float32Array]),
        );
        runs.push({ losses, threads, params });
      }
      const [a, b] = runs as [(typeof runs)[0], (typeof runs)[0]];
      expect([a.threads, b.threads]).toEqual([1, 2]);
      expect(b.losses).toHaveLength(6);
      for (const [i, loss] of b.losses.entries()) expect(loss, `step ${i + 1}`).toBeCloseTo(a.losses[i]!, 4);
      // Every parameter, the base's too (Delta-LoRA moves it): the same training, to float rounding.
      for (const [name, got] of b.params) {
        const want = a.params.get(name)!;
        const worst = got.reduce((w, x, i) => Math.max(w, Math.abs(x - want[i]!)), 0);
        expect(worst, name).toBeLessThan(1e-4);
      }
      one.dispose();
      two.dispose();
    });
  }

  it('leaves the threads open: every core offered, fewer where the model copies exceed their budget', async () => {
    const replicas = {
      startWorker: nodeDataParallelWorkers(new URL('./replica.ts', import.meta.url)),
      backend: 'cpu' as const,
      cores: 3,
    };
    const threadsUsed = async (session: Session) => {
      await session.loadModel(random);
      let threads = 0;
      await session.train(settings('lora', { steps: 1 }), TEXT, null, running, {
        trainStart: (start) => {
          threads = start.threads;
        },
      });
      session.dispose();
      return threads;
    };
    const probe = new Session();
    const bytes = 4 * (await probe.loadModel(random)).parameters;
    probe.dispose();
    expect(await threadsUsed(new Session({ replicas }))).toBe(3);
    // Room for one copy beside the training thread's own model: two threads.
    expect(await threadsUsed(new Session({ replicas: { ...replicas, autoMemoryBytes: 1.5 * bytes } }))).toBe(
      2,
    );
    expect(await threadsUsed(new Session({ replicas: { ...replicas, autoMemoryBytes: bytes / 2 } }))).toBe(1);
  });

  it('refuses several training threads where no replicas can run (WebGPU)', async () => {
    const session = new Session();
    await session.loadModel(random);
    await expect(session.train(settings('lora', { threads: 2 }), TEXT, null, running)).rejects.toThrow(
      /several threads needs the WASM or cpu backend/,
    );
    await expect(session.train(settings('lora', { threads: 0 }), TEXT, null, running)).rejects.toThrow(
      /training threads must be a whole number of at least 1 \(got 0\)/,
    );
    session.dispose();
  });

  it('pauses between steps and stops early', async () => {
    const session = new Session();
    await session.loadModel(random);
    let resume!: () => void;
    let reached!: () => void;
    const pausedReached = new Promise<void>((r) => (reached = r));
    const control = {
      paused: false,
      stopped: false,
      whilePaused: () => {
        reached();
        return new Promise<void>((r) => (resume = r));
      },
    };
    const states: string[] = [];
    const run = session.train(settings('lora', { steps: 50 }), TEXT, null, control, {
      state: (s) => states.push(s),
      step: (s) => {
        if (s.step === 2) control.paused = true;
      },
    });
    await pausedReached;
    expect(states).toEqual(['training', 'paused']);
    control.paused = false;
    control.stopped = true;
    resume();
    const end = await run;
    expect(end).toMatchObject({ reason: 'stopped', steps: 2 });
    session.dispose();
  });

  it('loads a model folder given as files, with the byte tokenizer for a 256-token vocabulary', async () => {
    const reference = new Session();
    await reference.loadModel(random);
    const files = await saveModelFiles(reference.model!);
    const session = new Session();
    const info = await session.loadModel({ kind: 'files', label: 'folder', files });
    expect(info).toMatchObject({
      modelType: 'gpt2',
      layers: 2,
      vocabSize: 256,
      positions: 64,
      tokenizer: 'bytes',
    });
    expect(await session.generate(SAMPLE)).toBe(await reference.generate(SAMPLE));
    reference.dispose();
    session.dispose();
  });

  it('says what is wrong with bad model folders, adapters and settings', async () => {
    const session = new Session();
    const error = async (promise: Promise<unknown>) =>
      describeError(
        await promise.then(
          () => null,
          (e) => e,
        ),
      );

    const bert = new Map([['config.json', JSON.stringify({ model_type: 'bert' })]]);
    expect(await error(session.loadModel({ kind: 'files', label: 'bert', files: bert }))).toMatchObject({
      kind: 'unsupported',
      message: expect.stringMatching(/^Unsupported model: .*unsupported model_type "bert"/),
    });
    const empty = new Map([['README.md', 'hi']]);
    expect(await error(session.loadModel({ kind: 'files', label: 'x', files: empty }))).toMatchObject({
      kind: 'file',
      message: expect.stringMatching(/no config.json/),
    });
    const noTokenizer = new Map([['config.json', JSON.stringify({ ...TINY, vocab_size: 300 })]]);
    expect(await error(session.loadModel({ kind: 'files', label: 'x', files: noTokenizer }))).toMatchObject({
      kind: 'file',
      message: expect.stringMatching(/no tokenizer.json/),
    });

    await session.loadModel(random);
    expect(await error(session.train(settings('lora'), 'short', null, running))).toMatchObject({
      kind: 'input',
      message: expect.stringMatching(/fewer than one block of 16/),
    });
    expect(await error(session.train(settings('lora', { seqLen: 100 }), TEXT, null, running))).toMatchObject({
      message: expect.stringMatching(/longer than the model's 64 positions/),
    });
    expect(await error(session.exportAdapter())).toMatchObject({
      message: expect.stringMatching(/no adapter yet/),
    });
    const notZip = new Map([['adapter.zip', strToU8('not a zip')]]);
    expect(await error(session.loadAdapter(notZip))).toMatchObject({
      kind: 'file',
      message: expect.stringMatching(/no adapter_config.json or adapter_model.safetensors/),
    });
    const wrongShape = zipSync({
      'a/adapter_config.json': strToU8(
        JSON.stringify({ peft_type: 'LORA', r: 4, target_modules: ['c_attn'] }),
      ),
      'a/adapter_model.safetensors': new Uint8Array(16),
    });
    expect(await error(session.loadAdapter(new Map([['a.zip', wrongShape]])))).toMatchObject({
      kind: 'file',
    });
    expect(() => techniqueConfig('lora', { r: '0' })).toThrow(/rank r must be between 1 and 1024/);
    session.dispose();
  });

  it('words out-of-memory failures of either backend as such', () => {
    for (const message of [
      'Aborted(OOM). Build with -sASSERTIONS for more info.',
      'Cannot enlarge memory arrays to size 4294967296 bytes',
      'WebAssembly.Memory(): could not allocate memory',
      'Array buffer allocation failed',
      'Failed to execute createBuffer on GPUDevice: GPUOutOfMemoryError',
    ]) {
      expect(describeError(new Error(message)), message).toMatchObject({
        kind: 'memory',
        message: `Out of memory: ${message}`,
        hint: expect.stringMatching(/smaller batch size/),
      });
    }
    expect(describeError(new Error('something else')).kind).toBe('internal');
  });
});
