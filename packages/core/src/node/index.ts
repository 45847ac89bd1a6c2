// @peft/core/node: Node-only file helpers (the main entry stays browser-safe).

export { readAdapterConfigFile, writeAdapterConfigFile } from './adapter_config_file.js';
export { adapterFolder, loadAdapter, type SaveAdapterOptions, saveAdapter } from './adapter_folder.js';
export { writeFileAtomic } from './atomic_write.js';
export {
  CHECKPOINT_FILES,
  CheckpointError,
  type CheckpointTarget,
  resumeFromCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
export { type NodeDataParallelWorkerOptions, nodeDataParallelWorkers } from './data_parallel_workers.js';
export { type ModuleWorkerOptions, moduleWorker, siblingModule } from './module_worker.js';
export { readSafetensorsFile, readSafetensorsFileHeader, writeSafetensorsFile } from './safetensors_file.js';
