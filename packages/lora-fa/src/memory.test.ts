// The activation memory LoRA-FA saves, measured: what the gradient tape keeps for the backward pass,
// the peak of distinct tensor buffers (core's measureBufferPeak) and tfjs's own peak tensor bytes
// (core's measureStepPeak) of one forward + backward pass, LoRA against LoRA-FA on the same model and
// batch. Byte counts are deterministic: these are exact comparisons, not timings.
import '@tensorflow/tfjs-backend-cpu';
import { measureBufferPeak, measureStepPeak, type PeftModel } from '@peft/core';
import type { LoraConfigInput } from '@peft/lora';
import type { CausalLM } from '@peft/models';
import { causalLMLoss } from '@peft/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { activationBytesSaved } from './memory.js';
import { adapted, keptForBackward, type Technique, tokens } from './models.test-support.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ROWS = 4;
const LENGTH = 17; // 16 input tokens per row: 64 tokens
const TOKENS = ROWS * (LENGTH - 1);
const IDS = tokens(ROWS, LENGTH, 2);

type Variant = Technique | 'lora, A frozen';

/** LoRA, LoRA-FA, or LoRA with A frozen: PEFT's `create_lorafa_optimizer` math on plain LoRA. */
function build(variant: Variant, config: LoraConfigInput): PeftModel<CausalLM> {
  const { peft } = adapted(variant === 'lora-fa' ? 'lora-fa' : 'lora', config);
  if (variant === 'lora, A frozen') {
    for (const [name, p] of peft.namedParameters()) if (name.includes('lora_A')) p.requiresGrad = false;
  }
  peft.train();
  return peft;
}

function backwardPass(peft: PeftModel<CausalLM>): () => void {
  const trainable = [...peft.namedParameters()].filter(([, p]) => p.requiresGrad).map(([, p]) => p.variable);
  return () => {
    const { value, grads } = tf.variableGrads(() => causalLMLoss(peft.model, IDS), trainable);
    tf.dispose([value, ...Object.values(grads)]);
  };
}

interface Measured {
  kept: number;
  buffers: number;
  handles: number;
}

async function measure(peft: PeftModel<CausalLM>): Promise<Measured> {
  const kept = keptForBackward(peft, () => causalLMLoss(peft.model, IDS));
  const buffers = measureBufferPeak(backwardPass(peft)).peakBytes;
  const step = await measureStepPeak(backwardPass(peft));
  return { kept, buffers, handles: step.peakBytes - step.baselineBytes };
}

const report: string[] = [];

describe('activation memory, LoRA against LoRA-FA (GPT-2 width 32, 2 blocks, batch 4 × 16 tokens, r 4)', () => {
  // c_attn and c_fc both read a LayerNorm output, which nothing but the adapted layer keeps.
  const config: LoraConfigInput = { r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_fc'] };

  it("LoRA-FA keeps exactly each adapted layer's input x less for the backward pass: Σ tokens × d_in × 4 bytes", async () => {
    const fa = await measure(build('lora-fa', config));
    const lora = await measure(build('lora', config));
    const frozenA = await measure(build('lora, A frozen', config));
    const saved = activationBytesSaved(build('lora-fa', config), TOKENS);
    expect(saved).toBe(2 * 2 * TOKENS * 32 * 4); // 2 blocks × (c_attn + c_fc), d_in 32
    // The tape: LoRA keeps x (for A's gradient) and z; LoRA-FA only z. LoRA with A frozen by hand
    // keeps no x either: core's Linear runs a frozen layer through frozenMatMul, as LoRA-FA's A.
    expect(lora.kept - fa.kept).toBe(saved);
    expect(frozenA.kept - fa.kept).toBe(0);
    // Peak of distinct buffers over forward + backward: the same x, plus (for LoRA) A's gradients and
    // tfjs's bookkeeping of the backward pass.
    const gradientsOfA = 2 * 2 * 4 * 32 * 4;
    expect(frozenA.buffers).toBe(fa.buffers);
    expect(lora.buffers - fa.buffers).toBeGreaterThanOrEqual(saved + gradientsOfA);
    // tfjs's own count (measureStepPeak) adds a tensor's size for every handle: the kept copies of x
    // (one per Reshape and MatMul reading it) and of the frozen W and A each count, so it shows more.
    expect(lora.handles - fa.handles).toBeGreaterThan(lora.buffers - fa.buffers);
    report.push(
      `x kept by LoRA, Σ tokens·d_in·4: ${saved} bytes`,
      `kept for backward (distinct buffers): LoRA ${lora.kept}, LoRA A-frozen ${frozenA.kept}, LoRA-FA ${fa.kept}`,
      `peak distinct buffers: LoRA ${lora.buffers}, LoRA A-frozen ${frozenA.buffers}, LoRA-FA ${fa.buffers} (LoRA − LoRA-FA ${lora.buffers - fa.buffers}, A-frozen − LoRA-FA ${frozenA.buffers - fa.buffers})`,
      `peak tensor bytes (measureStepPeak): LoRA ${lora.handles}, LoRA A-frozen ${frozenA.handles}, LoRA-FA ${fa.handles} (LoRA − LoRA-FA ${lora.handles - fa.handles})`,
    );
  });

  it("saves nothing for an input the model itself keeps (GPT-2's attention output, kept by a Reshape)", async () => {
    const cProj = { ...config, targetModules: ['attn.c_proj'] };
    const kept = (variant: Variant) => {
      const peft = build(variant, cProj);
      return keptForBackward(peft, () => causalLMLoss(peft.model, IDS));
    };
    // activationBytesSaved counts the layer's x; here the buffer stays alive whatever LoRA-FA does.
    expect(activationBytesSaved(build('lora-fa', cProj), TOKENS)).toBe(2 * TOKENS * 32 * 4);
    expect(kept('lora, A frozen') - kept('lora-fa')).toBe(0);
  });

  it('with lora_dropout, LoRA also keeps the mask and the dropped-out x; LoRA-FA rebuilds the mask', async () => {
    const dropout = { ...config, loraDropout: 0.1 };
    const kept = (variant: Variant) => {
      const peft = build(variant, dropout);
      return keptForBackward(peft, () => causalLMLoss(peft.model, IDS));
    };
    const difference = kept('lora, A frozen') - kept('lora-fa');
    const saved = activationBytesSaved(build('lora-fa', dropout), TOKENS);
    // tf.dropout's tape keeps four x-sized buffers (uniform noise, its floor, the mask, and x for the
    // masking Mul) and two scalars; the frozen A's matmul keeps nothing (core's frozen Linear).
    expect(difference).toBe(4 * saved + 4 * 2 * 4); // 4 layers, 2 scalars of 4 bytes each
    report.push(`with lora_dropout 0.1: kept for backward, LoRA A-frozen − LoRA-FA = ${difference} bytes`);
  });

  it('reports the measured bytes', () => {
    console.log(`LoRA-FA activation memory (${TOKENS} tokens):\n  ${report.join('\n  ')}`);
  });
});
