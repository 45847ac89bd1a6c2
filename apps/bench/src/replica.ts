// The worker module of the bench's data-parallel check (core's `DataParallelGradients`, its
// workers from `@peft/core/node`'s `nodeDataParallelWorkers`): in each worker thread, the base model wrapped with the technique, as on the
// main thread (the main thread sends its parameter values before the first batch), and the loss.
import type { DataParallelReplica } from '@peft/core';
import { loadModel } from '@peft/models/node';
import type { LabelledRow } from './data.js';
import { maskedLMLoss } from './lm.js';
import { loadTechniques, setUpTechnique } from './techniques.js';

export interface ReplicaOptions {
  model: string;
  technique: string;
  steps: number;
}

export async function setup(options: ReplicaOptions): Promise<DataParallelReplica<LabelledRow[]>> {
  const { available, missing } = await loadTechniques([options.technique]);
  const technique = available[0];
  if (!technique) throw new Error(missing[0]?.reason ?? `unknown technique ${options.technique}`);
  const model = await loadModel(options.model);
  const { module, optimizer } = await setUpTechnique(technique, model, options.steps);
  optimizer.dispose(); // the main thread's optimizer updates the parameters
  return { module, loss: (rows) => maskedLMLoss(model, rows) };
}
