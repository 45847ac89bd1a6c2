import * as tf from '@tensorflow/tfjs-core';
import { replacedKernel } from '../register_kernels.js';

/** Runs the wasm kernel that `registerTrainingKernels` replaced, for comparing outputs. */
export function runReplacedKernel(
  kernelName: string,
  inputs: tf.NamedTensorMap,
  attrs: tf.NamedAttrMap = {},
): tf.Tensor | tf.Tensor[] {
  const original = replacedKernel(kernelName);
  if (original === undefined) throw new Error(`no replaced wasm kernel for ${kernelName}`);
  const out = original.kernelFunc({ inputs, backend: tf.backend(), attrs });
  const wrap = (info: tf.TensorInfo) => tf.engine().makeTensorFromTensorInfo(info);
  return Array.isArray(out) ? out.map(wrap) : wrap(out);
}

/** Max |a - b| / (1 + |b|) over all elements (shapes must match). */
export function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  expectSameShape(a, b);
  const x = a.dataSync();
  const y = b.dataSync();
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / (1 + Math.abs(y[i]!)));
  return worst;
}

function expectSameShape(a: tf.Tensor, b: tf.Tensor): void {
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new Error(`shapes differ: [${a.shape}] vs [${b.shape}]`);
}
