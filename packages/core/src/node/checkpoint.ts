import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { SafetensorsTensor } from '../files/safetensors.js';
import type { TrainingState } from '../train/trainer.js';
import { writeFileAtomic } from './atomic_write.js';
import { readSafetensorsFile, writeSafetensorsFile } from './safetensors_file.js';

/** File names inside a checkpoint folder. */
export const CHECKPOINT_FILES = {
  /** Trainable parameters by dotted name. */
  parameters: 'trainable.safetensors',
  /** The optimizer's state tensors (`OptimizerState.tensors`). */
  optimizer: 'optimizer.safetensors',
  /** Step, generator state, optimizer numbers; written last, so it marks a complete save. */
  state: 'trainer_state.json',
} as const;

const FORMAT = 'peft-js-training-checkpoint';
const VERSION = 1;
/** safetensors metadata key tying each tensor file to the save that wrote it. */
const SAVE_ID_KEY = 'checkpoint_id';

/** What can be checkpointed: a `Trainer` (any batch type). */
export interface CheckpointTarget {
  getTrainingState(): TrainingState;
  setTrainingState(state: TrainingState): void;
}

/** A checkpoint that cannot be read, is incomplete, or does not fit the model; nothing was restored. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

interface StateFile {
  format: typeof FORMAT;
  version: typeof VERSION;
  checkpointId: string;
  step: number;
  seedState: number;
  optimizerScalars: Record<string, number>;
}

/**
 * Saves trainable parameters, optimizer state, step (the schedule's position) and the generator state
 * to `dir` (created if needed). Every file is written atomically (temporary file, then rename), the
 * JSON last; a random save id in every file lets `resumeFromCheckpoint` detect a save that was
 * interrupted while overwriting an older one.
 */
export async function saveCheckpoint(dir: string, target: CheckpointTarget): Promise<void> {
  const state = target.getTrainingState();
  const checkpointId = randomUUID();
  const metadata = { format: FORMAT, [SAVE_ID_KEY]: checkpointId, step: String(state.step) };
  await mkdir(dir, { recursive: true });
  await writeSafetensorsFile(join(dir, CHECKPOINT_FILES.parameters), state.parameters, metadata);
  await writeSafetensorsFile(join(dir, CHECKPOINT_FILES.optimizer), state.optimizer.tensors, metadata);
  const stateFile: StateFile = {
    format: FORMAT,
    version: VERSION,
    checkpointId,
    step: state.step,
    seedState: state.seedState,
    optimizerScalars: state.optimizer.scalars,
  };
  await writeFileAtomic(join(dir, CHECKPOINT_FILES.state), `${JSON.stringify(stateFile, null, 2)}\n`);
}

function isRecordOfNumbers(value: unknown): value is Record<string, number> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'number')
  );
}

async function readStateFile(dir: string): Promise<StateFile> {
  const path = join(dir, CHECKPOINT_FILES.state);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new CheckpointError(
      `checkpoint ${dir}: cannot read ${CHECKPOINT_FILES.state}: ${(error as Error).message}`,
    );
  }
  const file = parsed as Partial<StateFile> | null;
  if (
    file?.format !== FORMAT ||
    file.version !== VERSION ||
    typeof file.checkpointId !== 'string' ||
    typeof file.step !== 'number' ||
    typeof file.seedState !== 'number' ||
    !isRecordOfNumbers(file.optimizerScalars)
  ) {
    throw new CheckpointError(
      `checkpoint ${dir}: ${CHECKPOINT_FILES.state} is not a ${FORMAT} version ${VERSION} state file`,
    );
  }
  return file as StateFile;
}

async function readTensorFile(
  dir: string,
  name: string,
  checkpointId: string,
): Promise<Map<string, SafetensorsTensor>> {
  let contents: Awaited<ReturnType<typeof readSafetensorsFile>>;
  try {
    contents = await readSafetensorsFile(join(dir, name));
  } catch (error) {
    throw new CheckpointError(`checkpoint ${dir}: cannot read ${name}: ${(error as Error).message}`);
  }
  if (contents.metadata[SAVE_ID_KEY] !== checkpointId) {
    throw new CheckpointError(
      `checkpoint ${dir}: ${name} belongs to a different save than ${CHECKPOINT_FILES.state} (an interrupted save?)`,
    );
  }
  return contents.tensors;
}

function toTensors(values: Map<string, SafetensorsTensor>): Map<string, tf.Tensor> {
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, { shape, data }] of values) {
    const dtype = data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : 'bool';
    tensors.set(name, tf.tensor(data, shape, dtype));
  }
  return tensors;
}

/**
 * Restores a checkpoint written by `saveCheckpoint` into `target`, so that training on continues
 * exactly as if it had not stopped (given the same batches from the saved step on). Everything is
 * read and checked before anything is assigned: a corrupt, incomplete or mismatched checkpoint
 * (missing or unexpected tensor, wrong shape) throws `CheckpointError` and restores nothing.
 * Returns the restored step.
 */
export async function resumeFromCheckpoint(dir: string, target: CheckpointTarget): Promise<number> {
  const stateFile = await readStateFile(dir);
  const parameterValues = await readTensorFile(dir, CHECKPOINT_FILES.parameters, stateFile.checkpointId);
  const optimizerValues = await readTensorFile(dir, CHECKPOINT_FILES.optimizer, stateFile.checkpointId);
  const parameters = toTensors(parameterValues);
  const optimizerTensors = toTensors(optimizerValues);
  try {
    target.setTrainingState({
      step: stateFile.step,
      seedState: stateFile.seedState,
      parameters,
      optimizer: { tensors: optimizerTensors, scalars: stateFile.optimizerScalars },
    });
  } catch (error) {
    throw new CheckpointError(`checkpoint ${dir} does not fit: ${(error as Error).message}`);
  } finally {
    tf.dispose([...parameters.values(), ...optimizerTensors.values()]);
  }
  return stateFile.step;
}
