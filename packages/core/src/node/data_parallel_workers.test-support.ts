// The worker module of data_parallel_workers.test.ts: a small model (a frozen projection, a trainable
// LayerNorm and head) and a mean-squared-error loss over rows; options make it fail on purpose.
import * as tf from '@tensorflow/tfjs-core';
import { freezeParameters } from '../nn/freeze.js';
import { LayerNorm } from '../nn/layer_norm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { manualSeed } from '../nn/random.js';

export interface Row {
  x: number[];
  y: number[];
}

export class SmallModel extends Module {
  readonly body = this.registerModule('body', new Linear({ inFeatures: 4, outFeatures: 8 }));
  readonly norm = this.registerModule('norm', new LayerNorm({ dim: 8 }));
  readonly head = this.registerModule('head', new Linear({ inFeatures: 8, outFeatures: 2 }));

  constructor() {
    super();
    freezeParameters(this, /body\..*/);
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.head.forward(this.norm.forward(this.body.forward(x))));
  }
}

/** Mean squared error over the rows (a mean over rows: shards weigh by their row count). */
export function rowsLoss(model: SmallModel) {
  return (rows: Row[]) =>
    tf.tidy(() => {
      const x = tf.tensor2d(rows.map((r) => r.x));
      const y = tf.tensor2d(rows.map((r) => r.y));
      return tf.mean(tf.square(tf.sub(model.forward(x), y))) as tf.Scalar;
    });
}

export interface SetupOptions {
  seed?: number;
  /** Throw in setup. */
  failSetup?: boolean;
  /** The loss throws on this call (1-based). */
  failAtCall?: number;
  /** The worker exits (code 3) on this call. */
  exitAtCall?: number;
}

export function setup(options: SetupOptions = {}) {
  if (options.failSetup) throw new Error('no model today');
  manualSeed(options.seed ?? 99); // any values: the main thread sends its own
  const model = new SmallModel();
  const loss = rowsLoss(model);
  let calls = 0;
  return {
    module: model,
    loss: (rows: Row[]) => {
      calls++;
      if (calls === options.failAtCall) throw new Error(`loss failed on call ${calls}`);
      if (calls === options.exitAtCall) process.exit(3);
      return loss(rows);
    },
  };
}
