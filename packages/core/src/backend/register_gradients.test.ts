import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerAllGradients, tfjsGradientKernelNames } from './register_gradients.js';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tfjsDist = path.join(
  path.dirname(
    createRequire(path.join(packageRoot, 'package.json')).resolve('@tensorflow/tfjs-core/package.json'),
  ),
  'dist',
);

/** Kernel names of the gradients tfjs-core's own register_all_gradients.js registers, read from its sources. */
async function kernelNamesInTfjsSources(): Promise<string[]> {
  const registerAll = await readFile(path.join(tfjsDist, 'register_all_gradients.js'), 'utf8');
  const files = [...registerAll.matchAll(/from '\.\/(gradients\/\w+)'/g)].map((m) => m[1]!);
  const names = new Set<string>();
  for (const file of files) {
    const source = await readFile(path.join(tfjsDist, `${file}.js`), 'utf8');
    for (const match of source.matchAll(/kernelName: (\w+),/g)) {
      const kernelName = (tf as unknown as Record<string, unknown>)[match[1]!];
      expect(typeof kernelName, `${file}: ${match[1]} is a public kernel name`).toBe('string');
      names.add(kernelName as string);
    }
  }
  return [...names];
}

describe('registerAllGradients', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('registers every gradient of tfjs-core register_all_gradients.js', async () => {
    const expected = await kernelNamesInTfjsSources();
    expect(expected.length).toBeGreaterThan(90);
    expect([...tfjsGradientKernelNames].sort()).toEqual([...expected].sort());
    const missing = expected.filter((name) => tf.getGradient(name) === undefined);
    expect(missing).toEqual([]);
  });

  it('is idempotent and keeps a gradient registered before it', () => {
    expect(registerAllGradients()).toBe(0);
    const original = tf.getGradient('Sinh');
    const custom: tf.GradConfig = { kernelName: 'Sinh', gradFunc: (dy) => ({ x: () => dy as tf.Tensor }) };
    tf.registerGradient(custom);
    try {
      expect(registerAllGradients()).toBe(0);
      expect(tf.getGradient('Sinh')).toBe(custom);
    } finally {
      tf.registerGradient(original);
    }
  });

  it('makes tf.variableGrads and optimizer.minimize work on a RealDiv / matMul graph', async () => {
    const w = tf.variable(
      tf.tensor2d([
        [0.5, -1],
        [2, 0.25],
      ]),
    );
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const loss = () => tf.mean(tf.div(tf.square(tf.matMul(x, w)), tf.add(tf.abs(w), 1))) as tf.Scalar;
    const { value, grads } = tf.variableGrads(loss, [w]);
    expect(grads[w.name]!.shape).toEqual([2, 2]);
    const optimizer = tf.train.adam(0.05);
    const first = await value.data();
    let last = first[0]!;
    for (let i = 0; i < 20; i++) last = (await optimizer.minimize(loss, true)!.data())[0]!;
    expect(last).toBeLessThan(first[0]! * 0.7);
    tf.dispose([w, x, value, ...Object.values(grads)]);
    optimizer.dispose();
  });

  it('bundles only gradient code and imports only the public tfjs-core entry', async () => {
    const bundle = await readFile(path.join(packageRoot, 'src/generated/tfjs_gradients.js'), 'utf8');
    const imports = [...bundle.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports).toEqual(['@tensorflow/tfjs-core']);
    for (const internal of ['class Engine', 'class Tensor ', 'class Environment', 'kernelRegistry']) {
      expect(bundle.includes(internal), internal).toBe(false);
    }
    // tfjs-core's own ESM tree is several MB; the gradients alone are under 150 KB.
    expect(bundle.length).toBeLessThan(150_000);
  });

  it('works in plain Node, outside vitest', async () => {
    const script = `
      import * as tf from '@tensorflow/tfjs-core';
      import '@tensorflow/tfjs-backend-cpu';
      import { registerAllGradients } from './src/backend/register_gradients.ts';
      await tf.setBackend('cpu');
      const w = tf.variable(tf.tensor2d([[1, 2], [3, 4]]));
      const loss = () => tf.mean(tf.div(tf.matMul(w, w), tf.scalar(3)));
      const before = (await loss().data())[0];
      const optimizer = tf.train.sgd(0.01);
      for (let i = 0; i < 5; i++) optimizer.minimize(loss);
      const after = (await loss().data())[0];
      console.log(JSON.stringify({ again: registerAllGradients(), realDiv: tf.getGradient('RealDiv') !== undefined, before, after }));
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: packageRoot,
      },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ again: 0, realDiv: true });
    expect(result.after).toBeLessThan(result.before);
  });
});
