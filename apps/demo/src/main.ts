// Trains a tiny character-level transformer on a paragraph with @peft/core's modules, trainer and
// backend selection, printing the loss as it falls. Run: `pnpm demo` from the repository root.
import {
  AdamW,
  cosineScheduleWithWarmup,
  crossEntropy,
  Embedding,
  formatBackendReport,
  initBackend,
  LayerNorm,
  Linear,
  Module,
  ModuleDict,
  manualSeed,
  scaledDotProductAttention,
  Trainer,
} from '@peft/core';
import * as tf from '@tensorflow/tfjs-core';

const TEXT =
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, ' +
  'and nothing particular to interest me on shore, I thought I would sail about a little and see the watery ' +
  'part of the world. It is a way I have of driving off the spleen and regulating the circulation.';

const VOCAB = 256;
const DIM = 64;
const HEADS = 4;
const CONTEXT = 32;
const BATCH = 8;
const STEPS = Number(process.env.DEMO_STEPS ?? 60);

class Block extends Module {
  readonly ln1 = this.registerModule('ln_1', new LayerNorm({ dim: DIM }));
  readonly qkv = this.registerModule('c_attn', new Linear({ inFeatures: DIM, outFeatures: 3 * DIM }));
  readonly proj = this.registerModule('c_proj', new Linear({ inFeatures: DIM, outFeatures: DIM }));
  readonly ln2 = this.registerModule('ln_2', new LayerNorm({ dim: DIM }));
  readonly fc = this.registerModule('c_fc', new Linear({ inFeatures: DIM, outFeatures: 4 * DIM }));
  readonly out = this.registerModule('c_out', new Linear({ inFeatures: 4 * DIM, outFeatures: DIM }));

  forward(x: tf.Tensor): tf.Tensor {
    const [batch, time] = x.shape as [number, number, number];
    const heads = (t: tf.Tensor) =>
      tf.transpose(tf.reshape(t, [batch, time, HEADS, DIM / HEADS]), [0, 2, 1, 3]);
    const [q, k, v] = tf.split(this.qkv.forward(this.ln1.forward(x)), 3, -1) as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
    const attended = scaledDotProductAttention(heads(q), heads(k), heads(v));
    const merged = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [batch, time, DIM]);
    const h = tf.add(x, this.proj.forward(merged));
    return tf.add(h, this.out.forward(tf.relu(this.fc.forward(this.ln2.forward(h)))));
  }
}

class TinyLM extends Module {
  readonly tokens = this.registerModule('wte', new Embedding({ numEmbeddings: VOCAB, embeddingDim: DIM }));
  readonly positions = this.registerModule(
    'wpe',
    new Embedding({ numEmbeddings: CONTEXT, embeddingDim: DIM }),
  );
  readonly blocks = this.registerModule('h', new ModuleDict<Block>());
  readonly norm = this.registerModule('ln_f', new LayerNorm({ dim: DIM }));
  readonly head = this.registerModule(
    'lm_head',
    new Linear({ inFeatures: DIM, outFeatures: VOCAB, bias: false }),
  );

  constructor(layers: number) {
    super();
    for (let i = 0; i < layers; i++) this.blocks.set(String(i), new Block());
  }

  forward(ids: tf.Tensor): tf.Tensor {
    const time = ids.shape[1]!;
    let h = tf.add(this.tokens.forward(ids), this.positions.forward(tf.range(0, time, 1, 'int32')));
    for (const key of this.blocks.keys()) h = this.blocks.get(key)!.forward(h);
    return this.head.forward(this.norm.forward(h));
  }
}

/** Next-character cross-entropy of a batch of windows `[B, T+1]`. */
function languageModelLoss(model: TinyLM, windows: tf.Tensor2D): tf.Scalar {
  const [batch, span] = windows.shape;
  const inputs = tf.slice(windows, [0, 0], [batch, span - 1]);
  const targets = tf.slice(windows, [0, 1], [batch, span - 1]);
  return crossEntropy(model.forward(inputs), targets);
}

function* batches(bytes: Uint8Array, seed: number): Generator<tf.Tensor2D> {
  let state = seed;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  for (;;) {
    const rows: number[][] = [];
    for (let b = 0; b < BATCH; b++) {
      const start = Math.floor(next() * (bytes.length - CONTEXT - 1));
      rows.push([...bytes.subarray(start, start + CONTEXT + 1)]);
    }
    yield tf.tensor2d(rows, [BATCH, CONTEXT + 1], 'int32');
  }
}

async function main(): Promise<void> {
  const report = await initBackend();
  console.log(formatBackendReport(report));
  manualSeed(0);
  const model = new TinyLM(2);
  const bytes = new TextEncoder().encode(TEXT);
  const trainer = new Trainer<tf.Tensor2D>({
    module: model,
    loss: (windows) => languageModelLoss(model, windows),
    schedule: cosineScheduleWithWarmup({ warmupSteps: 5, trainingSteps: STEPS }),
    optimizer: new AdamW(model.namedParameters(), { lr: 3e-3 }),
    maxGradNorm: 1,
    seed: 0,
  });
  const losses: number[] = [];
  const data = batches(bytes, 1);
  const started = performance.now();
  for (let step = 1; step <= STEPS; step++) {
    const batch = data.next().value as tf.Tensor2D;
    const info = await trainer.trainStep(batch);
    batch.dispose();
    losses.push(info.loss);
    if (step === 1 || step % 10 === 0) {
      console.log(
        `step ${String(step).padStart(3)}  loss ${info.loss.toFixed(4)}  lr ${info.lr.toExponential(2)}`,
      );
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const first = losses[0]!;
  const last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
  console.log(
    `loss fell from ${first.toFixed(3)} to ${last.toFixed(3)} in ${STEPS} steps (${seconds.toFixed(1)} s)`,
  );
  if (!(last < first)) process.exitCode = 1;
}

await main();
