import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CausalLM } from './causal_lm.js';
import { loadModel as loadModelFromFiles, ModelLoadError, saveModelFiles } from './checkpoint.js';
import { ModelConfigError } from './config.js';
import { loadModel, saveModel } from './node/index.js';
import { readSafetensorsTensors } from './safetensors_reader.js';
import { fixtureDir, MODEL_FIXTURES, useCpuBackend } from './test-support/fixtures.js';

let scratch: string;
beforeAll(async () => {
  await useCpuBackend();
  scratch = await mkdtemp(join(tmpdir(), 'peft-models-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function stateOf(model: CausalLM): Map<string, Float32Array> {
  return new Map([...model.stateDict()].map(([name, v]) => [name, v.dataSync() as Float32Array]));
}

/** A fixture folder's files in memory, optionally edited. */
function fixtureFiles(name: string): Map<string, Uint8Array> {
  const dir = fixtureDir(name);
  const files = new Map<string, Uint8Array>();
  for (const file of ['config.json', 'model.safetensors']) files.set(file, readFileSync(join(dir, file)));
  return files;
}

function withConfig(files: Map<string, Uint8Array>, edit: (config: Record<string, unknown>) => void) {
  const config = JSON.parse(new TextDecoder().decode(files.get('config.json')));
  edit(config);
  return new Map(files).set('config.json', new TextEncoder().encode(JSON.stringify(config)));
}

function withTensors(files: Map<string, Uint8Array>, edit: (tensors: Map<string, tf.Tensor>) => void) {
  const { tensors } = readSafetensors(files.get('model.safetensors')!);
  const live = new Map([...tensors].map(([k, t]) => [k, tf.tensor(t.data, t.shape)]));
  edit(live);
  const bytes = writeSafetensors(live, { format: 'pt' });
  for (const t of live.values()) t.dispose();
  return new Map(files).set('model.safetensors', bytes);
}

describe.each(MODEL_FIXTURES)('%s: save and load', (name) => {
  it('round-trips exactly, and writes the weights file byte for byte as transformers did', async () => {
    const model = await loadModel(fixtureDir(name));
    const out = join(scratch, name);
    await saveModel(model, out);
    const written = (await readdir(out)).sort();
    const original = JSON.parse(readFileSync(join(fixtureDir(name), 'config.json'), 'utf8'));
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8'))).toEqual(original);
    if (written.includes('model.safetensors') && !name.includes('sharded')) {
      const ours = await readFile(join(out, 'model.safetensors'));
      expect(Buffer.compare(ours, readFileSync(join(fixtureDir(name), 'model.safetensors')))).toBe(0);
    }
    const again = await loadModel(out);
    const before = stateOf(model);
    const after = stateOf(again);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [key, values] of before) expect(after.get(key)).toEqual(values);
    model.dispose();
    again.dispose();
  });
});

describe('sharded checkpoints', () => {
  it('loads the index and its shards, and saves shards with an index like transformers', async () => {
    const model = await loadModel(fixtureDir('llama3-rope-sharded'));
    const files = await saveModelFiles(model, { maxShardSize: 50_000 });
    const names = [...files.keys()];
    expect(names).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(new TextDecoder().decode(files.get('model.safetensors.index.json')));
    const reference = JSON.parse(
      readFileSync(join(fixtureDir('llama3-rope-sharded'), 'model.safetensors.index.json'), 'utf8'),
    );
    expect(index.metadata).toEqual(reference.metadata);
    expect(Object.keys(index.weight_map).sort()).toEqual(Object.keys(reference.weight_map).sort());
    const again = await loadModelFromFiles(files);
    expect(stateOf(again)).toEqual(stateOf(model));
    model.dispose();
    again.dispose();
  });

  it('names a missing shard', async () => {
    const dir = join(scratch, 'missing-shard');
    const model = await loadModel(fixtureDir('llama3-rope-sharded'));
    await saveModel(model, dir, { maxShardSize: 50_000 });
    model.dispose();
    await rm(join(dir, 'model-00002-of-00002.safetensors'));
    await expect(loadModel(dir)).rejects.toThrow(/shard model-00002-of-00002.safetensors .* is missing/);
  });

  it('rejects shard names that leave the folder', async () => {
    const files = fixtureFiles('gpt2-tiny');
    files.delete('model.safetensors');
    files.set(
      'model.safetensors.index.json',
      new TextEncoder().encode('{"weight_map": {"a": "../x.safetensors"}}'),
    );
    await expect(loadModelFromFiles(files)).rejects.toThrow(/invalid shard/);
  });
});

describe('loading from memory and browser files', () => {
  it('loads from ArrayBuffers and from File objects', async () => {
    const files = fixtureFiles('gpt2-tiny');
    const fromBuffers = await loadModelFromFiles(
      new Map([...files].map(([k, v]) => [k, Uint8Array.from(v).buffer])),
    );
    const fromFiles = await loadModelFromFiles(
      [...files].map(([k, v]) => new File([Uint8Array.from(v)], `folder/${k}`)),
    );
    expect(stateOf(fromFiles)).toEqual(stateOf(fromBuffers));
    fromBuffers.dispose();
    fromFiles.dispose();
  });

  it('reads GPT-2 checkpoints saved without the transformer. prefix, skipping attn.bias buffers', async () => {
    const files = withTensors(fixtureFiles('gpt2-tiny'), (tensors) => {
      for (const [key, value] of [...tensors]) {
        tensors.delete(key);
        tensors.set(key.replace(/^transformer\./, ''), value);
      }
      tensors.set('h.0.attn.bias', tf.ones([1, 1, 32, 32]));
    });
    const bare = await loadModelFromFiles(files);
    const reference = await loadModel(fixtureDir('gpt2-tiny'));
    expect(stateOf(bare)).toEqual(stateOf(reference));
    bare.dispose();
    reference.dispose();
  });

  it('reads float16 and bfloat16 weights as float32 and records the dtype in config.json', async () => {
    const model = await loadModel(fixtureDir('llama-gqa-untied'));
    const files = await saveModelFiles(model, { dtype: 'BF16' });
    expect(JSON.parse(new TextDecoder().decode(files.get('config.json'))).dtype).toBe('bfloat16');
    const half = await loadModelFromFiles(files);
    const [name, full] = [...model.stateDict()][0]!;
    const diff = tf.max(tf.abs(tf.sub(half.stateDict().get(name)!, full))).dataSync()[0]!;
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(0.01 * tf.max(tf.abs(full)).dataSync()[0]!);
    model.dispose();
    half.dispose();
  });
});

describe('large safetensors files', () => {
  it('reads a file in slices of tensors with the same result as a whole read', async () => {
    const bytes = readFileSync(join(fixtureDir('gpt2-tiny'), 'model.safetensors'));
    const file = { size: bytes.byteLength, read: async (b: number, e: number) => bytes.subarray(b, e) };
    const whole = await readSafetensorsTensors(file, 'x');
    const sliced = await readSafetensorsTensors(file, 'x', { wholeFileBytes: 0, chunkBytes: 5000 });
    expect(sliced).toEqual(whole);
  });

  it('rejects a sliced file whose tensors leave a gap', async () => {
    const bytes = readFileSync(join(fixtureDir('gpt2-tiny'), 'model.safetensors'));
    const truncated = bytes.subarray(0, bytes.byteLength - 4);
    const file = {
      size: truncated.byteLength,
      read: async (b: number, e: number) => truncated.subarray(b, e),
    };
    await expect(readSafetensorsTensors(file, 'x', { wholeFileBytes: 0, chunkBytes: 5000 })).rejects.toThrow(
      /file has \d+ bytes/,
    );
  });
});

describe('errors name the problem', () => {
  it('missing folder, config.json and weights', async () => {
    await expect(loadModel(join(scratch, 'nope'))).rejects.toThrow(/model folder not found: .*nope/);
    const empty = join(scratch, 'empty');
    const model = await loadModel(fixtureDir('gpt2-tiny'));
    await saveModel(model, empty);
    model.dispose();
    await rm(join(empty, 'config.json'));
    await expect(loadModel(empty)).rejects.toThrow(/no config\.json/);
    const noWeights = new Map(fixtureFiles('gpt2-tiny'));
    noWeights.delete('model.safetensors');
    noWeights.set('pytorch_model.bin', new Uint8Array(4));
    await expect(loadModelFromFiles(noWeights)).rejects.toThrow(
      /no model\.safetensors or model\.safetensors\.index\.json \(found pytorch_model\.bin/,
    );
  });

  it('unknown model_type, listing the supported ones', async () => {
    const files = withConfig(fixtureFiles('gpt2-tiny'), (c) => {
      c.model_type = 'bert';
    });
    const error = await loadModelFromFiles(files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelConfigError);
    expect((error as Error).message).toMatch(
      /unsupported model_type "bert" \(supported: gpt2, llama, mistral, qwen2\)/,
    );
  });

  it('unsupported config: rope type, cross attention, head layout', async () => {
    const llama = fixtureFiles('llama-gqa-untied');
    await expect(
      loadModelFromFiles(
        withConfig(llama, (c) => {
          c.rope_parameters = { rope_type: 'yarn', rope_theta: 10000, factor: 4 };
        }),
      ),
    ).rejects.toThrow(/rope type "yarn" .* not supported \(supported: default, linear, llama3\)/);
    await expect(
      loadModelFromFiles(
        withConfig(llama, (c) => {
          c.num_key_value_heads = 3;
        }),
      ),
    ).rejects.toThrow(/num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/);
    await expect(
      loadModelFromFiles(
        withConfig(fixtureFiles('gpt2-tiny'), (c) => {
          c.add_cross_attention = true;
        }),
      ),
    ).rejects.toThrow(/add_cross_attention/);
  });

  it('shape mismatch, missing and unexpected tensors, by name', async () => {
    const files = withTensors(fixtureFiles('llama-gqa-untied'), (tensors) => {
      tensors.set('model.layers.1.self_attn.k_proj.weight', tf.zeros([8, 32]));
      tensors.delete('model.norm.weight');
      tensors.set('model.layers.0.extra.weight', tf.zeros([2]));
    });
    const before = tf.memory().numTensors;
    const error = await loadModelFromFiles(files).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelLoadError);
    const message = (error as Error).message;
    expect(message).toContain(
      '"model.layers.1.self_attn.k_proj.weight" has shape [8,32] in the checkpoint, the model expects [16,32]',
    );
    expect(message).toContain('missing tensor "model.norm.weight"');
    expect(message).toContain('unexpected tensor "model.layers.0.extra.weight"');
    expect(tf.memory().numTensors).toBe(before); // the half-built model was disposed

    const lenient = withTensors(fixtureFiles('llama-gqa-untied'), (tensors) => {
      tensors.delete('model.norm.weight');
      tensors.set('model.layers.0.extra.weight', tf.zeros([2]));
    });
    const model = await loadModelFromFiles(lenient, { strict: false });
    expect(
      model
        .stateDict()
        .get('model.norm.weight')!
        .dataSync()
        .every((v) => v === 1),
    ).toBe(true);
    model.dispose();
  });
});
