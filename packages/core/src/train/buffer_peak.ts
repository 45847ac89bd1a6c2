import * as tf from '@tensorflow/tfjs-core';

/** Result of `measureBufferPeak`. */
export interface BufferPeak<T> {
  result: T;
  /**
   * Highest net growth, over the start, of the bytes of distinct tensor buffers (data ids) alive at
   * any point inside `fn`.
   */
  peakBytes: number;
  /** Net growth at the end (0 when `fn` frees everything it made). */
  endBytes: number;
}

interface EngineInternals {
  state: { tensorInfo: WeakMap<object, { bytes: number }> };
  trackTensor(tensor: tf.Tensor, backend: unknown): void;
  disposeTensor(tensor: tf.Tensor): void;
}

let measuring = false;

/**
 * Runs `fn` (synchronous) and reports the peak growth of memory in distinct tensor buffers.
 *
 * `measureStepPeak` reports tfjs's own count (`tf.memory().numBytes`), which adds a tensor's full size
 * for every tensor *handle*: a reshape, a clone, and each copy the gradient tape keeps of an op's
 * input (including a frozen weight a MatMul keeps for its backward pass) count again although they
 * share one buffer. This counts each buffer once, from when its first handle is made until its last
 * is disposed: what the step really holds in tensors. Like `measureStepPeak`, memory a kernel
 * allocates and frees internally is not seen. Calls cannot be nested.
 */
export function measureBufferPeak<T>(fn: () => T): BufferPeak<T> {
  if (measuring) throw new Error('measureBufferPeak: already measuring (calls cannot be nested)');
  const engine = tf.engine() as unknown as EngineInternals;
  const info = engine.state.tensorInfo;
  const track = engine.trackTensor;
  const dispose = engine.disposeTensor;
  const own = {
    track: Object.hasOwn(engine, 'trackTensor'),
    dispose: Object.hasOwn(engine, 'disposeTensor'),
  };
  let bytes = 0;
  let peak = 0;
  engine.trackTensor = function (this: EngineInternals, tensor, backend) {
    const fresh = !info.has(tensor.dataId);
    track.call(this, tensor, backend);
    if (fresh) {
      bytes += info.get(tensor.dataId)?.bytes ?? 0;
      peak = Math.max(peak, bytes);
    }
  };
  engine.disposeTensor = function (this: EngineInternals, tensor) {
    const held = info.get(tensor.dataId)?.bytes;
    dispose.call(this, tensor);
    if (held !== undefined && !info.has(tensor.dataId)) bytes -= held;
  };
  measuring = true;
  try {
    const result = fn();
    return { result, peakBytes: peak, endBytes: bytes };
  } finally {
    measuring = false;
    // The wrappers are own properties shadowing the engine's methods: put back what was there.
    if (own.track) engine.trackTensor = track;
    else delete (engine as Partial<EngineInternals>).trackTensor;
    if (own.dispose) engine.disposeTensor = dispose;
    else delete (engine as Partial<EngineInternals>).disposeTensor;
  }
}
