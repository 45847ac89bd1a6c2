import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerTrainingKernels } from '../register_kernels.js';
import { runReplacedKernel } from './replaced_kernel.test-support.js';
import { reduceTranspose } from './Transpose.js';

// Slice, SplitV, Unpack, Transpose, Tile, GatherV2, PadV2 and Sum only move (or add) values: their
// outputs must equal the replaced wasm kernels' bit for bit, for every dtype they handle.

beforeAll(async () => {
  await tf.setBackend('wasm');
  registerTrainingKernels();
});

function iota(shape: number[], dtype: 'float32' | 'int32' | 'bool' = 'float32'): tf.Tensor {
  const size = tf.util.sizeFromShape(shape);
  const index = Array.from({ length: size }, (_, i) => i);
  if (dtype === 'bool')
    return tf.tensor(
      index.map((i) => i % 3 === 0),
      shape,
      'bool',
    );
  if (dtype === 'int32')
    return tf.tensor(
      index.map((i) => i - 7),
      shape,
      'int32',
    );
  return tf.tensor(
    index.map((i) => i * 0.5 - 7),
    shape,
    'float32',
  );
}

function expectSame(got: tf.Tensor | tf.Tensor[], want: tf.Tensor | tf.Tensor[]): void {
  const g = Array.isArray(got) ? got : [got];
  const w = Array.isArray(want) ? want : [want];
  expect(g.length).toBe(w.length);
  g.forEach((t, i) => {
    expect(t.shape).toEqual(w[i]!.shape);
    expect(t.dtype).toBe(w[i]!.dtype);
    expect(Array.from(t.dataSync())).toEqual(Array.from(w[i]!.dataSync()));
  });
}

const dtypes = ['float32', 'int32', 'bool'] as const;

describe('Slice, SplitV, Unpack', () => {
  const slices: [number[], number[], number[]][] = [
    [[10], [3], [4]],
    [
      [3, 4, 5],
      [1, 2, 1],
      [-1, 1, -1],
    ],
    [
      [6, 9],
      [1, 2],
      [4, 5],
    ],
    [
      [6, 9],
      [2, 0],
      [3, 9],
    ],
    [
      [4, 5, 6, 7],
      [1, 0, 2, 3],
      [2, 5, 3, 4],
    ],
    [
      [2, 3, 3, 4, 5],
      [0, 1, 1, 0, 0],
      [2, 1, 2, 4, 5],
    ],
    [
      [2, 3, 3, 4, 5],
      [1, 0, 0, 1, 2],
      [1, 3, 3, 2, 1],
    ],
    [
      [2, 2, 2, 2, 2, 3],
      [0, 1, 0, 1, 0, 1],
      [2, 1, 2, 1, 2, 2],
    ],
    [
      [3, 4],
      [1, 1],
      [0, 2],
    ],
  ];
  for (const dtype of dtypes) {
    for (const [shape, begin, size] of slices) {
      it(`slices [${shape}] at [${begin}] size [${size}] (${dtype})`, () => {
        const x = iota(shape, dtype);
        expectSame(tf.slice(x, begin, size), runReplacedKernel('Slice', { x }, { begin, size }));
      });
    }
  }

  it('splits and unstacks 5-D tensors on middle axes', () => {
    const x = iota([2, 4, 3, 2, 8]);
    for (const axis of [0, 1, 2, 4]) {
      expectSame(
        tf.split(x, [1, x.shape[axis]! - 1], axis),
        runReplacedKernel('SplitV', { x }, { numOrSizeSplits: [1, x.shape[axis]! - 1], axis }),
      );
      expectSame(tf.unstack(x, axis), runReplacedKernel('Unpack', { value: x }, { axis }));
    }
    expectSame(
      tf.split(iota([6, 9], 'int32'), 3, -1),
      runReplacedKernel('SplitV', { x: iota([6, 9], 'int32') }, { numOrSizeSplits: 3, axis: -1 }),
    );
  });
});

describe('Transpose', () => {
  const cases: [number[], number[]][] = [
    [
      [2, 3, 4, 5, 6],
      [2, 0, 3, 1, 4],
    ],
    [
      [2, 3, 4, 5, 6],
      [4, 3, 2, 1, 0],
    ],
    [
      [2, 3, 4, 5, 6],
      [0, 1, 3, 4, 2],
    ],
    [
      [2, 1, 4, 1, 6],
      [3, 4, 0, 1, 2],
    ],
    [
      [2, 3, 4, 5, 6, 2],
      [5, 0, 4, 1, 3, 2],
    ],
    [
      [3, 2, 2, 2, 2],
      [0, 1, 2, 3, 4],
    ],
    [
      [8, 5, 3, 4, 6],
      [2, 0, 3, 1, 4],
    ],
  ];
  for (const dtype of dtypes) {
    for (const [shape, perm] of cases) {
      it(`transposes [${shape}] by [${perm}] (${dtype})`, () => {
        const x = iota(shape, dtype);
        expectSame(tf.transpose(x, perm), runReplacedKernel('Transpose', { x }, { perm }));
      });
    }
  }

  it('reduces permutations to the fewest dims', () => {
    expect(reduceTranspose([2, 3, 4, 5, 6], [0, 1, 3, 4, 2])).toEqual([
      [6, 4, 30],
      [0, 2, 1],
    ]);
    // Size-1 dims vanish, so axes 0 and 2 become adjacent: [2, 4 | 6] -> [6 | 2, 4].
    expect(reduceTranspose([2, 1, 4, 1, 6], [3, 4, 0, 1, 2])).toEqual([
      [8, 6],
      [1, 0],
    ]);
    expect(reduceTranspose([2, 3, 4], [0, 1, 2])).toEqual([[24], [0]]);
    expect(reduceTranspose([8, 128, 3, 6, 64], [2, 0, 3, 1, 4])).toEqual([
      [8, 128, 3, 6, 64],
      [2, 0, 3, 1, 4],
    ]);
  });
});

describe('Tile', () => {
  const cases: [number[], number[]][] = [
    [
      [1, 1, 4, 4],
      [2, 3, 1, 1],
    ],
    [
      [3, 1],
      [1, 5],
    ],
    [
      [2, 3],
      [3, 2],
    ],
    [
      [2, 1, 3],
      [2, 4, 1],
    ],
    [[5], [3]],
    [
      [2, 2, 1, 2, 1],
      [1, 2, 3, 1, 2],
    ],
  ];
  for (const dtype of dtypes) {
    for (const [shape, reps] of cases) {
      it(`tiles [${shape}] by [${reps}] (${dtype})`, () => {
        const x = iota(shape, dtype);
        expectSame(tf.tile(x, reps), runReplacedKernel('Tile', { x }, { reps }));
      });
    }
  }

  it('broadcasts and selects with broadcasting through Tile', () => {
    const mask = tf.tensor4d([1, 0, 1, 1], [1, 1, 2, 2], 'bool');
    const scores = iota([2, 3, 2, 2]);
    const got = tf.where(mask, scores, tf.scalar(-1e9));
    const want = scores.arraySync() as number[][][][];
    const maskValues = [1, 0, 1, 1];
    for (const head of want.flat()) {
      head.forEach((row, i) => {
        row.forEach((_, j) => {
          if (!maskValues[i * 2 + j]) row[j] = -1e9;
        });
      });
    }
    expect(got.arraySync()).toEqual(want);
  });
});

describe('GatherV2', () => {
  const cases: [number[], number[], number][] = [
    [[50, 8], [3, 3, 49, 0], 0],
    [[4, 6, 5], [5, 0, 2], 1],
    [[4, 6, 5], [4, 0], 2],
  ];
  for (const dtype of dtypes) {
    for (const [shape, indexValues, axis] of cases) {
      it(`gathers [${indexValues}] from [${shape}] on axis ${axis} (${dtype})`, () => {
        const x = iota(shape, dtype);
        const indices = tf.tensor1d(indexValues, 'int32');
        expectSame(
          tf.gather(x, indices, axis),
          runReplacedKernel('GatherV2', { x, indices }, { axis, batchDims: 0 }),
        );
      });
    }
  }

  it('gathers with batch dims (which the replaced kernel gets wrong)', () => {
    const x = iota([3, 4, 5]);
    const indices = tf.tensor2d([1, 3, 0, 2, 2, 1], [3, 2], 'int32');
    const xs = x.arraySync() as number[][][];
    const want = (indices.arraySync() as number[][]).map((row, b) => row.map((i) => xs[b]![i]!));
    expect(tf.gather(x, indices, 1, 1).arraySync()).toEqual(want);
  });

  it('rejects out-of-range indices', () => {
    expect(() => tf.gather(iota([4, 2]), tf.tensor1d([4], 'int32'))).toThrow(/not in \[0, 3\]/);
    expect(() => tf.gather(iota([4, 2]), tf.tensor1d([-1], 'int32'))).toThrow(/not in \[0, 3\]/);
  });
});

describe('PadV2 and Sum', () => {
  const pads: [number[], [number, number][]][] = [
    [
      [4, 3],
      [
        [0, 0],
        [0, 6],
      ],
    ],
    [
      [4, 3],
      [
        [2, 1],
        [0, 0],
      ],
    ],
    [
      [2, 3, 4, 5],
      [
        [0, 0],
        [1, 2],
        [0, 0],
        [3, 0],
      ],
    ],
    [
      [2, 3, 2, 2, 3],
      [
        [1, 0],
        [0, 1],
        [0, 0],
        [2, 2],
        [0, 1],
      ],
    ],
  ];
  for (const dtype of ['float32', 'int32'] as const) {
    for (const [shape, paddings] of pads) {
      it(`pads [${shape}] by ${JSON.stringify(paddings)} (${dtype})`, () => {
        const x = iota(shape, dtype);
        const constantValue = dtype === 'int32' ? 3 : -1.5;
        expectSame(
          tf.pad(x, paddings, constantValue),
          runReplacedKernel('PadV2', { x }, { paddings, constantValue }),
        );
      });
    }
  }

  const sums: [number[], number[], boolean][] = [
    [[64, 33], [0], false],
    [[4, 8, 9], [0, 1], true],
    [[4, 8, 9], [1, 0], false],
    [[4, 8, 9], [2], false],
    [[4, 8, 9], [0, 2], false],
    [[4, 8, 9], [0, 1, 2], false],
  ];
  for (const [shape, axis, keepDims] of sums) {
    it(`sums [${shape}] over [${axis}] keepDims=${keepDims} like the replaced kernel, to the bit`, () => {
      const x = tf.randomNormal(shape, 0, 1, 'float32', 11);
      expectSame(tf.sum(x, axis, keepDims), runReplacedKernel('Sum', { x }, { axis, keepDims }));
    });
  }
});

describe('Identity', () => {
  it('shares the data: a clone outlives its source, and the memory goes with the last one', () => {
    const dataIds = tf.backend().numDataIds();
    const x = iota([4, 5]);
    const y = tf.clone(x);
    expect(tf.backend().numDataIds()).toBe(dataIds + 1);
    const values = Array.from(x.dataSync());
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual(values);
    y.dispose();
    expect(tf.backend().numDataIds()).toBe(dataIds);
    expectSame(tf.clone(iota([3], 'bool')), runReplacedKernel('Identity', { x: iota([3], 'bool') }));
  });
});

describe('memory', () => {
  it('every data-movement kernel frees what it allocates', () => {
    const dataIds = tf.backend().numDataIds();
    tf.tidy(() => {
      const x = iota([2, 4, 3, 2, 8]);
      tf.split(x, 2, 1);
      tf.unstack(x, 2);
      tf.transpose(x, [2, 0, 3, 1, 4]);
      tf.transpose(x, [0, 1, 3, 4, 2]);
      tf.tile(x, [1, 2, 1, 2, 1]);
      tf.gather(x, tf.tensor1d([1, 0], 'int32'), 1);
      tf.pad(x, [
        [0, 0],
        [1, 1],
        [0, 0],
        [0, 0],
        [0, 0],
      ]);
      tf.sum(x, [0, 1]);
    });
    expect(tf.backend().numDataIds()).toBe(dataIds);
  });
});
