import { nextSeed } from '../nn/random.js';

/**
 * Endless batches of `batchSize` token blocks, as transformers' run_clm example draws them: each epoch
 * visits every block once, in an order drawn from core's seeded generator (`manualSeed`), a new order
 * each epoch; a last partial batch of an epoch is filled from the next.
 */
export function* blockBatches<T>(blocks: readonly T[], batchSize: number): Generator<T[]> {
  let batch: T[] = [];
  for (;;) {
    const order = blocks.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = nextSeed() % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const index of order) {
      batch.push(blocks[index]!);
      if (batch.length === batchSize) {
        yield batch;
        batch = [];
      }
    }
  }
}
