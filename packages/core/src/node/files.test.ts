import '@tensorflow/tfjs-backend-cpu';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AdapterConfigError, defineAdapterConfig, pythonFloat } from '../files/adapter_config.js';
import { SafetensorsError } from '../files/safetensors.js';
import {
  readAdapterConfigFile,
  readSafetensorsFile,
  readSafetensorsFileHeader,
  writeAdapterConfigFile,
  writeSafetensorsFile,
} from './index.js';

let dir: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'peft-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('safetensors files', () => {
  it('writes tfjs tensors and raw arrays, and reads them back', async () => {
    const path = join(dir, 'adapter_model.safetensors');
    const a = tf.tensor2d([[1, 2, 3]]);
    await writeSafetensorsFile(
      path,
      { 'x.lora_A.weight': a, step: { dtype: 'I64', shape: [], data: [12] } },
      { format: 'pt' },
    );
    a.dispose();
    const { tensors, metadata } = await readSafetensorsFile(path);
    expect({ ...metadata }).toEqual({ format: 'pt' });
    expect(tensors.get('x.lora_A.weight')).toEqual({
      dtype: 'F32',
      shape: [1, 3],
      data: Float32Array.from([1, 2, 3]),
    });
    expect(tensors.get('step')).toEqual({ dtype: 'I64', shape: [], data: Int32Array.from([12]) });
  });

  it('keeps the error code and adds the path to format errors', async () => {
    const path = join(dir, 'broken.safetensors');
    await writeFile(path, Uint8Array.from([1, 2, 3]));
    const error = await readSafetensorsFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as SafetensorsError).code).toBe('TRUNCATED');
    expect((error as Error).message).toContain(path);
  });
});

describe('safetensors file headers', () => {
  it('lists names, dtypes and shapes from the header alone, validated against the file size', async () => {
    const path = join(dir, 'model.safetensors');
    await writeSafetensorsFile(
      path,
      {
        b: { dtype: 'F16', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
        a: { dtype: 'I32', shape: [4], data: [1, 2, 3, 4] },
      },
      { format: 'pt' },
    );
    const header = await readSafetensorsFileHeader(path);
    const full = await readSafetensorsFile(path);
    expect(header.tensors).toEqual([
      { name: 'a', dtype: 'I32', shape: [4] },
      { name: 'b', dtype: 'F16', shape: [2, 3] },
    ]);
    expect(new Set(header.tensors.map((t) => t.name))).toEqual(new Set(full.tensors.keys()));
    expect({ ...header.metadata }).toEqual({ format: 'pt' });
    // A truncated data region is caught from the header and the file size.
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 2));
    const error = await readSafetensorsFileHeader(path).catch((e: unknown) => e);
    expect((error as SafetensorsError).code).toBe('TRUNCATED');
    expect((error as Error).message).toContain(path);
    await writeFile(path, Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0]));
    expect(((await readSafetensorsFileHeader(path).catch((e: unknown) => e)) as SafetensorsError).code).toBe(
      'HEADER_TOO_LARGE',
    );
  });
});

describe('adapter_config.json files', () => {
  const schema = defineAdapterConfig({
    peftType: 'LORA',
    fields: { r: z.number().int().positive().default(8), lora_dropout: pythonFloat().default(0) },
  });

  it('writes the text PEFT writes, atomically, and reads it back', async () => {
    const path = join(dir, 'adapter_config.json');
    await writeAdapterConfigFile(path, schema.toJson({ ...schema.defaults(), r: 4, taskType: 'CAUSAL_LM' }));
    const text = await readFile(path, 'utf8');
    expect(text).toBe(
      '{\n  "auto_mapping": null,\n  "base_model_name_or_path": null,\n  "inference_mode": false,\n  "lora_dropout": 0.0,\n' +
        '  "peft_type": "LORA",\n  "peft_version": null,\n  "r": 4,\n  "revision": null,\n  "task_type": "CAUSAL_LM"\n}',
    );
    const json = await readAdapterConfigFile(path);
    expect(json.peft_type).toBe('LORA');
    expect(schema.parse(json)).toMatchObject({ r: 4, taskType: 'CAUSAL_LM', loraDropout: 0 });
  });

  it('adds the path to errors', async () => {
    const path = join(dir, 'adapter_config.json');
    await writeFile(path, '{"r": 8}');
    const error = await readAdapterConfigFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterConfigError);
    expect((error as Error).message).toBe(`${path}: adapter_config.json: missing "peft_type"`);
  });
});
