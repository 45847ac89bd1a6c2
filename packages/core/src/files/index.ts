// Checkpoint file formats, browser-safe (no Node imports): safetensors and adapter_config.json.
// Node file helpers live in `../node/` (the `@peft/core/node` entry).

export {
  AdapterConfigError,
  type AdapterConfigFields,
  type AdapterConfigJson,
  type AdapterConfigOf,
  type AdapterConfigSchema,
  defineAdapterConfig,
  type ParseAdapterConfigOptions,
  peekPeftType,
  pythonFloat,
  readAdapterConfig,
  serializeAdapterConfig,
  TASK_TYPES,
  type TaskType,
} from './adapter_config.js';
export {
  type ReadSafetensorsOptions,
  readSafetensors,
  readSafetensorsAsTensors,
  readSafetensorsHeader,
  type SafetensorsContents,
  type SafetensorsDtype,
  SafetensorsError,
  type SafetensorsErrorCode,
  type SafetensorsHeader,
  type SafetensorsTensor,
  type SafetensorsTensorInfo,
  type SafetensorsTensorInput,
  type SafetensorsWritable,
  type SafetensorsWritableMap,
  safetensorsHeaderBytes,
  type TensorData,
  type WriteSafetensorsOptions,
  writeSafetensors,
  writeSafetensorsAsync,
} from './safetensors.js';
