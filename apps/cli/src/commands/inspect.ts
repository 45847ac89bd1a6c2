// `peft inspect <path>`: what a model folder, adapter folder or .safetensors file holds.
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, registeredPeftMethods } from '@peft/core';
import { readAdapterConfigFile, readSafetensorsFileHeader } from '@peft/core/node';
import {
  CONFIG_FILE,
  parseConfigJson,
  SUPPORTED_MODEL_TYPES,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from '@peft/models';
import { UsageError } from '../errors.js';
import { formatCount, writeStdout } from '../output.js';
import '../techniques.js';

interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Number of elements. */
  parameters: number;
}

interface FileReport {
  file: string;
  bytes: number;
  metadata: Record<string, string>;
  tensors: TensorInfo[];
}

/** What `inspect --json` prints. */
export interface InspectReport {
  kind: 'model' | 'adapter' | 'safetensors';
  path: string;
  /** config.json or adapter_config.json, as stored. */
  config?: Record<string, unknown>;
  /** Models: the config's model_type and whether @peft/models can build it. */
  model_type?: string;
  supported?: boolean;
  /** Adapters: the config's peft_type and the registered technique that reads it, if any. */
  peft_type?: string;
  method?: string | null;
  /** Models: whether the folder has a tokenizer.json. */
  tokenizer?: boolean;
  files: FileReport[];
  tensors: number;
  parameters: number;
  parameters_by_dtype: Record<string, number>;
}

/** A weight file's header (read without its data, so large checkpoints are instant), with counts. */
async function fileReport(path: string): Promise<FileReport> {
  const [header, { size }] = await Promise.all([readSafetensorsFileHeader(path), stat(path)]);
  const tensors = header.tensors.map((t) => ({ ...t, parameters: t.shape.reduce((a, b) => a * b, 1) }));
  return { file: basename(path), bytes: size, metadata: { ...header.metadata }, tensors };
}

/** The weight files of a model folder: the shards its index names, or model.safetensors. */
async function modelWeightFiles(dir: string): Promise<string[]> {
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (await isFile(indexPath)) {
    let index: unknown;
    try {
      index = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (error) {
      throw new UsageError(`${indexPath} is not valid JSON (${(error as Error).message})`);
    }
    const map = (index as { weight_map?: unknown } | null)?.weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map))
      throw new UsageError(`${indexPath} has no "weight_map" object`);
    const shards = [...new Set(Object.values(map))];
    for (const shard of shards) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\'))
        throw new UsageError(`${indexPath} names an invalid shard ${JSON.stringify(shard)}`);
      if (!(await isFile(join(dir, shard))))
        throw new UsageError(`${dir}: shard ${shard} (listed in ${WEIGHTS_INDEX_FILE}) is missing`);
    }
    return shards as string[];
  }
  if (await isFile(join(dir, WEIGHTS_FILE))) return [WEIGHTS_FILE];
  throw new UsageError(
    `${dir}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} (only safetensors weights are read)`,
  );
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

function totals(files: FileReport[]): Pick<InspectReport, 'tensors' | 'parameters' | 'parameters_by_dtype'> {
  const byDtype: Record<string, number> = {};
  let tensors = 0;
  let parameters = 0;
  for (const tensor of files.flatMap((f) => f.tensors)) {
    tensors++;
    parameters += tensor.parameters;
    byDtype[tensor.dtype] = (byDtype[tensor.dtype] ?? 0) + tensor.parameters;
  }
  return { tensors, parameters, parameters_by_dtype: byDtype };
}

/** Inspects a model folder, an adapter folder or a .safetensors file. */
export async function inspectPath(path: string): Promise<InspectReport> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new UsageError(`not found: ${path}`);
  if (info.isFile()) {
    if (!path.endsWith('.safetensors'))
      throw new UsageError(
        `not a .safetensors file: ${path} (inspect takes a model folder, an adapter folder or a .safetensors file)`,
      );
    const files = [await fileReport(path)];
    return { kind: 'safetensors', path, files, ...totals(files) };
  }
  if (await isFile(join(path, ADAPTER_CONFIG_FILE))) {
    const config = await readAdapterConfigFile(join(path, ADAPTER_CONFIG_FILE));
    const weights = join(path, ADAPTER_WEIGHTS_FILE);
    if (!(await isFile(weights)))
      throw new UsageError(`${path}: adapter folder without ${ADAPTER_WEIGHTS_FILE}`);
    const files = [await fileReport(weights)];
    const method =
      registeredPeftMethods().find((m) => m.peftType === config.peft_type && !m.savesAs)?.name ?? null;
    return { kind: 'adapter', path, config, peft_type: config.peft_type, method, files, ...totals(files) };
  }
  if (await isFile(join(path, CONFIG_FILE))) {
    const configPath = join(path, CONFIG_FILE);
    const config = parseConfigJson(await readFile(configPath, 'utf8'), configPath);
    const files: FileReport[] = [];
    for (const name of await modelWeightFiles(path)) files.push(await fileReport(join(path, name)));
    return {
      kind: 'model',
      path,
      config,
      model_type: config.model_type,
      supported: SUPPORTED_MODEL_TYPES.includes(config.model_type),
      tokenizer: await isFile(join(path, 'tokenizer.json')),
      files,
      ...totals(files),
    };
  }
  throw new UsageError(
    `${path}: not a model or adapter folder (no ${CONFIG_FILE} or ${ADAPTER_CONFIG_FILE})`,
  );
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) =>
    row
      .map((cell, c) => (c === row.length - 1 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** The human-readable form of a report. */
export function formatInspectReport(report: InspectReport): string {
  const lines: string[] = [];
  if (report.kind === 'model') {
    lines.push(`model folder: ${report.path}`);
    lines.push(
      `model_type: ${report.model_type} ` +
        (report.supported
          ? '(supported)'
          : `(not supported by @peft/models; supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`),
    );
    lines.push(`tokenizer: ${report.tokenizer ? 'tokenizer.json' : 'none'}`);
  } else if (report.kind === 'adapter') {
    lines.push(`adapter folder: ${report.path}`);
    lines.push(
      `peft_type: ${report.peft_type} ` +
        (report.method ? `(technique "${report.method}")` : '(no technique registered for it)'),
    );
  } else {
    lines.push(`safetensors file: ${report.path}`);
  }
  if (report.config) {
    const name = report.kind === 'adapter' ? ADAPTER_CONFIG_FILE : CONFIG_FILE;
    lines.push(
      `${name}:`,
      ...JSON.stringify(report.config, null, 2)
        .split('\n')
        .map((l) => `  ${l}`),
    );
  }
  for (const file of report.files) {
    const metadata = Object.entries(file.metadata).map(([k, v]) => `${k}=${v}`);
    lines.push(
      `${file.file}: ${formatCount(file.bytes)} bytes, ${file.tensors.length} tensors` +
        (metadata.length > 0 ? `, metadata ${metadata.join(' ')}` : ''),
    );
    const rows = [
      ['name', 'dtype', 'shape', 'parameters'],
      ...file.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, formatCount(t.parameters)]),
    ];
    lines.push(...table(rows).map((l) => `  ${l}`));
  }
  const byDtype = Object.entries(report.parameters_by_dtype).map(([d, n]) => `${d}: ${formatCount(n)}`);
  lines.push(
    `total: ${formatCount(report.tensors)} tensors, ${formatCount(report.parameters)} parameters` +
      (byDtype.length > 0 ? ` (${byDtype.join(', ')})` : ''),
  );
  return `${lines.join('\n')}\n`;
}

export async function inspectCommand(path: string, options: { json?: boolean }): Promise<void> {
  const report = await inspectPath(path);
  await writeStdout(options.json ? `${JSON.stringify(report)}\n` : formatInspectReport(report));
}
