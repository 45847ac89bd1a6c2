import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { formatBackendReport, initBackend } from './init_backend.js';
import { requestWebGPUAdapter } from './webgpu_adapter.js';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs initBackend in a fresh Node process (a backend, once initialised, stays registered in-process). */
async function initBackendInChild(options: object, env: Record<string, string>) {
  const script = `
    import { initBackend } from './src/backend/init_backend.ts';
    try {
      console.log(JSON.stringify({ report: await initBackend(${JSON.stringify(options)}) }));
    } catch (error) {
      console.log(JSON.stringify({ error: error.message }));
    }
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    {
      cwd: packageRoot,
      env: { ...process.env, ...env },
    },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    report?: Record<string, unknown>;
    error?: string;
  };
}

const webgpu = await requestWebGPUAdapter();
const noAdapter = webgpu.adapter === null ? webgpu.reason : undefined;
if (noAdapter) console.warn(`SKIPPED forced webgpu: ${noAdapter}`);

afterAll(async () => {
  await initBackend({ backend: 'cpu' });
});

describe('initBackend', () => {
  it('picks the best backend and reports why the others were passed over', async () => {
    const report = await initBackend();
    expect(['webgpu', 'wasm', 'cpu']).toContain(report.backend);
    expect(tf.getBackend()).toBe(report.backend);
    const order = ['webgpu', 'wasm', 'cpu'];
    expect(report.fallbacks.map((f) => f.backend)).toEqual(order.slice(0, order.indexOf(report.backend)));
    for (const fallback of report.fallbacks) expect(fallback.reason.length).toBeGreaterThan(10);
    expect(formatBackendReport(report)).toContain(`backend: ${report.backend}`);
    // Gradients work whatever was chosen.
    const x = tf.tensor1d([1, 2, 3]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.div(t, tf.add(t, 1))))(x);
    expect(Array.from(await g.data())).toEqual([0.25, 1 / 9, 1 / 16].map((v) => expect.closeTo(v, 6)));
    tf.dispose([x, g]);
  });

  it('wasm: SIMD, single-threaded in Node (and says so), training kernels registered', async () => {
    const report = await initBackend({ backend: 'wasm', threads: 2 });
    expect(report).toMatchObject({
      backend: 'wasm',
      simd: true,
      relaxedSimd: true,
      threads: 1,
      fallbacks: [],
    });
    expect(report.reason).toContain('never uses threads in Node');
    expect(report.reason).toContain("core's GEMM with relaxed SIMD's multiply-add");
    expect(report.reason).toContain('2 threads requested, 1 in use');
    // The gradient of gather, which tfjs-backend-wasm lacks, comes from registerTrainingKernels.
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
    expect(formatBackendReport(report)).toMatch(/^backend: wasm \(SIMD, 1 thread\): /);
  });

  it("wasm in a fresh Node process: relaxed SIMD for the GEMM (Node 20: initBackend sets V8's flag)", async () => {
    const { report } = await initBackendInChild({ backend: 'wasm' }, {});
    expect(report).toMatchObject({ backend: 'wasm', relaxedSimd: true });
    const flagNote = '(V8 flag --experimental-wasm-relaxed-simd set)';
    // Node 22's V8 (12.4) and later ship relaxed SIMD; Node 20's (11.3) has it behind the flag.
    if (Number(process.versions.node.split('.')[0]) < 22) expect(report!.reason).toContain(flagNote);
    else expect(report!.reason).not.toContain(flagNote);
  });

  it('cpu: the reference backend', async () => {
    const report = await initBackend({ backend: 'cpu' });
    expect(report).toMatchObject({
      backend: 'cpu',
      simd: false,
      relaxedSimd: false,
      threads: 1,
      fallbacks: [],
    });
    expect(tf.getBackend()).toBe('cpu');
  });

  it.skipIf(noAdapter !== undefined)(
    'webgpu, forced: uses the adapter even if it is a software one',
    async () => {
      const report = await initBackend({ backend: 'webgpu' });
      expect(report).toMatchObject({ backend: 'webgpu', simd: false, threads: 0, fallbacks: [] });
      expect(report.reason).toContain('adapter');
      const a = tf.tensor2d([
        [1, 2],
        [3, 4],
      ]);
      const product = tf.matMul(a, a);
      expect(Array.from(await product.data())).toEqual([7, 10, 15, 22]);
      tf.dispose([a, product]);
    },
  );

  it('without a Vulkan driver: a forced webgpu fails saying why, the automatic choice falls back', async () => {
    const env = { VK_ICD_FILENAMES: '/nonexistent/icd.json' };
    const forced = await initBackendInChild({ backend: 'webgpu' }, env);
    expect(forced.error).toMatch(
      /^initBackend: backend 'webgpu' was requested but cannot be used: no adapter/,
    );
    expect(forced.error).toContain('/nonexistent/icd.json');
    const automatic = await initBackendInChild({}, env);
    expect(automatic.report).toMatchObject({ backend: 'wasm', fallbacks: [{ backend: 'webgpu' }] });
    expect((automatic.report!.fallbacks as { reason: string }[])[0]!.reason).toMatch(/^no adapter/);
  });
});
