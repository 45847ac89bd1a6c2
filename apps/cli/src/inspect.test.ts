import { readFileSync } from 'node:fs';
import { readSafetensorsFile } from '@peft/core/node';
import { describe, expect, it } from 'vitest';
import type { InspectReport } from './commands/inspect.js';
import { MODEL_FIXTURES, peft } from './test/run_cli.js';

/** Names, shapes and element counts of a file, read by core's full reader. */
async function tensorsOf(path: string): Promise<{ name: string; shape: number[]; parameters: number }[]> {
  const { tensors } = await readSafetensorsFile(path);
  return [...tensors].map(([name, t]) => ({ name, shape: t.shape, parameters: t.data.length }));
}

describe('peft inspect', () => {
  it('lists the config, tensors, shapes, dtypes and parameter counts of a model folder and a file', async () => {
    const dir = `${MODEL_FIXTURES}/gpt2-tiny`;
    const [text, json, file] = await Promise.all([
      peft('inspect', dir),
      peft('inspect', dir, '--json'),
      peft('inspect', `${dir}/model.safetensors`, '--json'),
    ]);
    const expected = await tensorsOf(`${dir}/model.safetensors`);
    const total = expected.reduce((sum, t) => sum + t.parameters, 0);

    expect(text.code).toBe(0);
    expect(text.stderr).toBe('');
    expect(text.stdout).toContain(`model folder: ${dir}`);
    expect(text.stdout).toContain('model_type: gpt2 (supported)');
    expect(text.stdout).toContain('"n_embd": 32');
    expect(text.stdout).toMatch(/transformer\.h\.0\.attn\.c_attn\.weight\s+F32\s+\[32, 96\]\s+3,072/);
    expect(text.stdout).toContain(
      `total: ${expected.length} tensors, ${total.toLocaleString('en-US')} parameters (F32: ${total.toLocaleString('en-US')})`,
    );

    const report = JSON.parse(json.stdout) as InspectReport;
    expect(report.kind).toBe('model');
    expect(report.config).toEqual(JSON.parse(readFileSync(`${dir}/config.json`, 'utf8')));
    expect(report.supported).toBe(true);
    expect(report.tokenizer).toBe(false);
    expect(report.parameters).toBe(total);
    expect(report.files.map((f) => f.file)).toEqual(['model.safetensors']);
    const listed = report.files[0]!.tensors.map(({ name, shape, parameters }) => ({
      name,
      shape,
      parameters,
    }));
    expect(listed.sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      expected.sort((a, b) => a.name.localeCompare(b.name)),
    );
    expect(report.files[0]!.tensors.every((t) => t.dtype === 'F32')).toBe(true);
    expect(report.files[0]!.metadata).toEqual({ format: 'pt' });

    const fileReport = JSON.parse(file.stdout) as InspectReport;
    expect(fileReport.kind).toBe('safetensors');
    expect(fileReport.config).toBeUndefined();
    expect(fileReport.files).toEqual(report.files);
  });

  it('reads every shard of a sharded checkpoint', async () => {
    const dir = `${MODEL_FIXTURES}/llama3-rope-sharded`;
    const result = await peft('inspect', dir, '--json');
    const report = JSON.parse(result.stdout) as InspectReport;
    const index = JSON.parse(readFileSync(`${dir}/model.safetensors.index.json`, 'utf8'));
    expect(report.files.map((f) => f.file).sort()).toEqual(
      [...new Set(Object.values(index.weight_map))].sort(),
    );
    const names = report.files.flatMap((f) => f.tensors.map((t) => t.name)).sort();
    expect(names).toEqual(Object.keys(index.weight_map).sort());
    const shards = await Promise.all(report.files.map((f) => tensorsOf(`${dir}/${f.file}`)));
    expect(report.parameters).toBe(shards.flat().reduce((sum, t) => sum + t.parameters, 0));
  });
});
