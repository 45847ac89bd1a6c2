import * as tf from '@tensorflow/tfjs-core';

/** The forward pass of a `customOp`: its output, and how to get each input's gradient. */
export interface CustomOpResult<T extends tf.Tensor> {
  value: T;
  /**
   * Given the output's gradient and what the forward pass saved, one function per input (in the
   * order of `inputs`) that computes that input's gradient. tfjs calls only the functions of inputs
   * the gradient being taken flows to, each in its own tidy.
   */
  gradients: (dy: tf.Tensor, saved: tf.Tensor[]) => Array<() => tf.Tensor>;
}

/** The engine method behind `tf.customGrad` (typed private in 4.22's declarations). */
interface KernelFuncRunner {
  runKernelFunc(params: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => tf.Tensor;
    backwardsFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): tf.Tensor;
}

/**
 * `tf.customGrad` with one gradient function per input, called only for the inputs the gradient
 * being taken flows to, as tfjs does for its own kernels. `tf.customGrad` computes every input's
 * gradient once any input needs one: for VeRA's folded layer (inputs x, λ_d, λ_b) at the bottom of a
 * model (GPT-2's first c_attn, whose x comes from frozen embeddings) that is a full `dy·W` product
 * nobody reads, which PyTorch's autograd skips too. For one-input ops `tf.customGrad` is enough
 * (tfjs drops a node none of whose inputs needs a gradient). `forward` runs in a tidy, off the tape
 * (inner ops are not recorded), and `save` keeps tensors for the backward pass, exactly as in
 * `tf.customGrad`, whose engine call this is (`runKernelFunc`: tfjs-core 4.22, the last release,
 * declares it private).
 */
export function customOp<T extends tf.Tensor>(
  inputs: tf.Tensor[],
  forward: (save: tf.GradSaveFunc) => CustomOpResult<T>,
): T {
  let gradients: CustomOpResult<T>['gradients'] | null = null;
  const inputMap: Record<string, tf.Tensor> = {};
  inputs.forEach((input, i) => {
    inputMap[i] = input;
  });
  const engine = tf.engine() as unknown as KernelFuncRunner;
  return engine.runKernelFunc({
    forwardFunc: (_backend, save) => {
      const result = forward(save);
      gradients = result.gradients;
      return result.value;
    },
    backwardsFunc: (dy, saved) => {
      const perInput = gradients!(dy, saved);
      if (perInput.length !== inputs.length) {
        throw new Error(`customOp: ${perInput.length} gradient functions for ${inputs.length} inputs`);
      }
      const map: Record<string, () => tf.Tensor> = {};
      perInput.forEach((gradient, i) => {
        map[i] = gradient;
      });
      return map;
    },
    inputs: inputMap,
  }) as T;
}
