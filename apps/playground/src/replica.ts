// A training replica (training on several threads): the base model from the same source, wrapped
// with the same technique, and the causal-LM loss of a shard. Its parameter values come from the
// training worker before the first batch. `replica_worker.ts` serves it in the browser; the Node
// tests start it with core's nodeDataParallelWorkers.
import { type DataParallelReplica, getPeftMethod, getPeftModel } from '@peft/core';
import { causalLMLoss } from '@peft/models';
import { buildModel, type ReplicaOptions } from './session.js';

export async function setup(options: ReplicaOptions): Promise<DataParallelReplica<number[][]>> {
  const { model } = await buildModel(options.source, false);
  const method = getPeftMethod(options.technique);
  const config = method.config.parse({ ...options.config, peft_type: method.peftType });
  const peft = getPeftModel(model, method, config, { modelType: model.modelType });
  return { module: peft, loss: (batch) => causalLMLoss(model, batch) };
}
