// The worker threads of `peft train --threads`: each builds the same model and technique (its
// values come from the main thread before the first batch) and computes a shard's loss
// (core's DataParallelGradients, through nodeDataParallelWorkers).
import { type DataParallelReplica, getPeftMethod, getPeftModel } from '@peft/core';
import { causalLMLoss } from '@peft/models';
import { loadModel } from '@peft/models/node';
import '../techniques.js';

export interface ReplicaOptions {
  modelDir: string;
  method: string;
  /** The technique's config as given (PEFT's field names); parsed here as on the main thread. */
  config: Record<string, unknown>;
}

export async function setup(options: ReplicaOptions): Promise<DataParallelReplica<number[][]>> {
  const model = await loadModel(options.modelDir);
  const method = getPeftMethod(options.method);
  // The main thread has reported the config's warnings already.
  const config = method.config.parse(
    { ...options.config, peft_type: method.peftType },
    { onWarning: () => {} },
  );
  const peft = getPeftModel(model, method, config, { modelType: model.modelType });
  return { module: peft, loss: (batch) => causalLMLoss(model, batch) };
}
