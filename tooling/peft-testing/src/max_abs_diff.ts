import * as tf from '@tensorflow/tfjs-core';

/** A tensor, a typed array or (nested) arrays of numbers. */
export type Values = tf.Tensor | ArrayLike<number> | NestedNumbers;
type NestedNumbers = readonly (number | NestedNumbers)[];

function flat(values: Values): ArrayLike<number> {
  if (values instanceof tf.Tensor) return values.dataSync();
  if (Array.isArray(values)) return (values as unknown[]).flat(Number.POSITIVE_INFINITY) as number[];
  return values as ArrayLike<number>;
}

/** max |a − b| over two equally sized sets of values (computed in float64). */
export function maxAbsDiff(a: Values, b: Values): number {
  const x = flat(a);
  const y = flat(b);
  if (x.length !== y.length) throw new Error(`maxAbsDiff: ${x.length} vs ${y.length} values`);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  return max;
}
