export { AdamW, type AdamWOptions } from './adamw.js';
export { blockBatches } from './block_batches.js';
export { type BufferPeak, measureBufferPeak } from './buffer_peak.js';
export { clipGradNorm, globalNorm } from './clip.js';
export {
  DataParallelGradients,
  type DataParallelOptions,
  type DataParallelStepTimings,
  type DataParallelWorker,
  splitRows,
} from './data_parallel.js';
export {
  type DataParallelReplica,
  type DataParallelSetup,
  type ReplicaPort,
  serveDataParallelReplica,
} from './data_parallel_replica.js';
export {
  type GradientContext,
  type GradientResult,
  type GradientSource,
  localGradients,
} from './gradient_source.js';
export { type MemoryAccount, measureMemory, measureStepPeak, type StepPeak, tensorBytes } from './memory.js';
export type { Optimizer, OptimizerState } from './optimizer.js';
export {
  biasAndNormNoDecay,
  type NamedParameters,
  type NoDecayRule,
  type ParameterGroup,
  weightDecayGroups,
} from './parameter_groups.js';
export {
  type CosineOptions,
  constantSchedule,
  constantScheduleWithWarmup,
  cosineScheduleWithWarmup,
  type DecayOptions,
  type LearningRateSchedule,
  linearScheduleWithWarmup,
  type WarmupOptions,
} from './schedule.js';
export {
  type Metrics,
  NonFiniteLossError,
  type StepInfo,
  Trainer,
  type TrainerCallbacks,
  type TrainerOptions,
  type TrainingState,
  type TrainOptions,
  type TrainResult,
} from './trainer.js';
export { createTrainingOptimizer } from './training_optimizer.js';
