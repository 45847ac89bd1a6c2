// Fused element-wise kernels for a transformer step on WebAssembly SIMD: GPT-2's gelu_new (forward
// and backward), LayerNorm (forward and backward) and the softmax backward, each one pass (or a
// few over a row in L1) instead of 6-15 tfjs kernels with a tensor in memory between each.
// exp is the usual range reduction (2^n · p(r), |r| ≤ ln2/2, degree-6 polynomial): ~2 ulp.
import { buildModule, FunctionBuilder, f32, i32, indices, v128 } from './wasm_builder.js';

export const FUSED_FUNCTIONS = [
  'geluNew',
  'geluNewGrad',
  'layerNorm',
  'layerNormGrad',
  'softmaxGrad',
  'causalSoftmax',
  'causalSoftmaxGrad',
  'columnSums',
  'crossEntropyGrad',
] as const;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;
/** z = x·(K1 + K2·x²) = 2c·(x + a·x³), gelu_new(x) = x·sigmoid(z). */
const K1 = 2 * SQRT_2_OVER_PI;
const K2 = 2 * SQRT_2_OVER_PI * GELU_A;

/**
 * f32x4 constants held in locals, set once at the top of a function: V8 rebuilds a `v128.const`
 * with three instructions wherever it is used, inside loops too.
 */
class Constants {
  readonly #locals = new Map<number, number>();
  constructor(readonly f: FunctionBuilder) {}
  /** Declares (and initialises, at the current position) constants; call before the loops. */
  declare(...values: number[]): this {
    for (const value of values) {
      if (this.#locals.has(value)) continue;
      const local = this.f.local(v128);
      this.f.f32x4Const(value).set(local);
      this.#locals.set(value, local);
    }
    return this;
  }
  /** Pushes a declared constant. */
  push(value: number): FunctionBuilder {
    const local = this.#locals.get(value);
    if (local === undefined) throw new Error(`constant ${value} was not declared`);
    return this.f.get(local);
  }
}

const EXP_CONSTANTS = [
  -87.3,
  88.3,
  Math.LOG2E,
  12582912 + 127,
  0.693359375,
  -2.1219444e-4,
  1 / 720,
  1 / 120,
  1 / 24,
  1 / 6,
  1 / 2,
  1,
];

/** 1.5·2^23 + 127: x + MAGIC rounds x to an integer n held in the low mantissa bits as n + 127. */
const MAGIC = 12582912 + 127;

/**
 * Leaves exp(x) on the stack for the v128 in local `x` (clobbers the temporaries). Rounding and
 * the 2^n scale use the magic-number trick (one add, one subtract, one shift) rather than
 * f32x4.nearest and i32x4.trunc_sat, and the clamp uses pmin/pmax: all of these are single x86
 * instructions, where f32x4.min/max and trunc_sat expand to several.
 */
function emitExp(k: Constants, x: number, t: { n: number; r: number; p: number }): void {
  const f = k.f;
  // Clamp so that 2^n stays a normal float: n in [-126, 127].
  f.get(x);
  k.push(-87.3).f32x4Pmax();
  k.push(88.3).f32x4Pmin().set(t.r);
  // fx = r·log2e + MAGIC (t.p holds fx), n = fx - MAGIC.
  f.get(t.r);
  k.push(Math.LOG2E).f32x4Mul();
  k.push(MAGIC).f32x4Add().set(t.p);
  f.get(t.p);
  k.push(MAGIC).f32x4Sub().set(t.n);
  // r = x - n·ln2 in two parts (Cody-Waite).
  f.get(t.r).get(t.n);
  k.push(0.693359375).f32x4Mul().f32x4Sub();
  f.get(t.n);
  k.push(-2.1219444e-4).f32x4Mul().f32x4Sub().set(t.r);
  // 2^n from the exponent bits: bits(fx) << 23 (the bits of MAGIC shift out).
  f.get(t.p).i32Const(23).i32x4Shl().set(t.n);
  // p = 1 + r + r²/2! + ... + r⁶/6! (Horner), times 2^n.
  f.get(t.r);
  k.push(1 / 720).f32x4Mul();
  k.push(1 / 120).f32x4Add();
  for (const c of [1 / 24, 1 / 6, 1 / 2, 1, 1]) {
    f.get(t.r).f32x4Mul();
    k.push(c).f32x4Add();
  }
  f.get(t.n).f32x4Mul();
}

/** Leaves sigmoid(z) = 1 / (1 + exp(-z)) on the stack for the v128 in local `z` (clobbers `z`). */
function emitSigmoid(k: Constants, z: number, t: { n: number; r: number; p: number }): void {
  const f = k.f;
  f.v128Zero().get(z).f32x4Sub().set(z);
  k.push(1);
  k.push(1);
  emitExp(k, z, t);
  f.f32x4Add().f32x4Div();
}

function temps(f: FunctionBuilder) {
  return { n: f.local(v128), r: f.local(v128), p: f.local(v128) };
}

/** Leaves the sum of the four lanes of local `v` (f32) on the stack. */
function horizontalSum(f: FunctionBuilder, v: number): void {
  f.get(v).f32x4ExtractLane(0).get(v).f32x4ExtractLane(1).f32Add();
  f.get(v).f32x4ExtractLane(2).f32Add().get(v).f32x4ExtractLane(3).f32Add();
}

/** `for (i = 0; i < count; i++) body()` with `pointers` advanced by 16 bytes after each body. */
function vectorLoop(f: FunctionBuilder, count: number, pointers: number[], body: () => void): void {
  const i = f.local(i32);
  f.forRange(i, count, () => {
    body();
    for (const p of pointers) f.increment(p, 16);
  });
}

/**
 * Two vectors per iteration (`body(0)` and `body(16)`: byte offsets from the pointers), then one
 * for an odd count: two independent dependency chains, for long chains of arithmetic (exp).
 */
function vectorLoopByTwo(
  f: FunctionBuilder,
  count: number,
  pointers: number[],
  body: (offset: number) => void,
) {
  const [i, pairs] = [f.local(i32), f.local(i32)];
  f.get(count).i32Const(1).op(0x75 /* shr_s */).set(pairs);
  f.forRange(i, pairs, () => {
    body(0);
    body(16);
    for (const p of pointers) f.increment(p, 32);
  });
  f.get(count)
    .i32Const(1)
    .op(0x71 /* and */)
    .ifElse(() => body(0));
}

/** geluNew(x, y, vectors): y = x·sigmoid(x·(K1 + K2·x²)). */
function geluNew(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32]);
  const [x, y, count] = [0, 1, 2];
  const chains = [0, 1].map(() => ({ v: f.local(v128), z: f.local(v128), t: temps(f) }));
  const k = new Constants(f).declare(...EXP_CONSTANTS, K1, K2);
  vectorLoopByTwo(f, count, [x, y], (offset) => {
    const { v, z, t } = chains[offset / 16]!;
    f.get(x).v128Load(offset).set(v);
    f.get(v).get(v).get(v).f32x4Mul();
    k.push(K2).f32x4Mul();
    k.push(K1).f32x4Add().f32x4Mul().set(z);
    f.get(y).get(v);
    emitSigmoid(k, z, t);
    f.f32x4Mul().v128Store(offset);
  });
  return f;
}

/** geluNewGrad(x, dy, dx, vectors): dx = dy·s·(1 + x·(1 - s)·(K1 + 3·K2·x²)), s = sigmoid(z). */
function geluNewGrad(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32]);
  const [x, dy, dx, count] = [0, 1, 2, 3];
  const chains = [0, 1].map(() => ({
    v: f.local(v128),
    x2: f.local(v128),
    z: f.local(v128),
    s: f.local(v128),
    t: temps(f),
  }));
  const k = new Constants(f).declare(...EXP_CONSTANTS, K1, K2, 3 * K2);
  vectorLoopByTwo(f, count, [x, dy, dx], (offset) => {
    const { v, x2, z, s, t } = chains[offset / 16]!;
    f.get(x).v128Load(offset).set(v);
    f.get(v).get(v).f32x4Mul().set(x2);
    f.get(x2);
    k.push(K2).f32x4Mul();
    k.push(K1).f32x4Add().get(v).f32x4Mul().set(z);
    emitSigmoid(k, z, t);
    f.set(s);
    f.get(dx);
    f.get(dy).v128Load(offset).get(s).f32x4Mul();
    // 1 + x·(1 - s)·(K1 + 3·K2·x²)
    f.get(v);
    k.push(1).get(s).f32x4Sub().f32x4Mul();
    f.get(x2);
    k.push(3 * K2).f32x4Mul();
    k.push(K1).f32x4Add().f32x4Mul();
    k.push(1).f32x4Add();
    f.f32x4Mul().v128Store(offset);
  });
  return f;
}

/**
 * Mean and 1/sqrt(variance + eps) of the row at `row` (`vectors` v128 long, `d` floats), splatted
 * into locals `mean` and `rstd` (two passes: the variance of the centred values).
 */
function rowMoments(
  f: FunctionBuilder,
  row: number,
  vectors: number,
  d: number,
  eps: number,
  out: { mean: number; rstd: number },
): void {
  const [p, acc, c] = [f.local(i32), f.local(v128), f.local(v128)];
  f.get(row).set(p).v128Zero().set(acc);
  vectorLoop(f, vectors, [p], () => f.get(acc).get(p).v128Load().f32x4Add().set(acc));
  horizontalSum(f, acc);
  f.get(d).f32ConvertI32().f32Div().f32x4Splat().set(out.mean);
  f.get(row).set(p).v128Zero().set(acc);
  vectorLoop(f, vectors, [p], () => {
    f.get(p).v128Load().get(out.mean).f32x4Sub().set(c);
    f.get(acc).get(c).get(c).f32x4Mul().f32x4Add().set(acc);
  });
  f.f32Const(1);
  horizontalSum(f, acc);
  f.get(d).f32ConvertI32().f32Div().get(eps).f32Add().f32Sqrt().f32Div().f32x4Splat().set(out.rstd);
}

/** layerNorm(x, gamma, beta, y, rows, d, eps): y = (x - mean)·rstd·gamma + beta per row; d % 4 = 0. */
function layerNorm(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, f32]);
  const [x, gamma, beta, y, rows, d, eps] = [0, 1, 2, 3, 4, 5, 6];
  const [r, vectors, px, pg, pb, py] = [
    f.local(i32),
    f.local(i32),
    f.local(i32),
    f.local(i32),
    f.local(i32),
    f.local(i32),
  ];
  const m = { mean: f.local(v128), rstd: f.local(v128) };
  f.get(d).i32Const(4).op(0x6d /* div_s */).set(vectors);
  f.forRange(r, rows, () => {
    rowMoments(f, x, vectors, d, eps, m);
    f.get(x).set(px).get(gamma).set(pg).get(beta).set(pb).get(y).set(py);
    vectorLoop(f, vectors, [px, pg, pb, py], () => {
      f.get(py);
      f.get(px).v128Load().get(m.mean).f32x4Sub().get(m.rstd).f32x4Mul().get(pg).v128Load().f32x4Mul();
      f.get(pb).v128Load().f32x4Add().v128Store();
    });
    f.get(x).get(d).i32Const(4).mul().add().set(x);
    f.get(y).get(d).i32Const(4).mul().add().set(y);
  });
  return f;
}

/**
 * layerNormGrad(x, gamma, dy, dx, dgamma, dbeta, rows, d, eps), with g = dy·gamma and x̂ the
 * normalised x: dx = rstd·(g - mean(g) - x̂·mean(g·x̂)), dgamma = Σ_rows dy·x̂, dbeta = Σ_rows dy.
 */
function layerNormGrad(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, i32, i32, f32]);
  const [x, gamma, dy, dx, dgamma, dbeta, rows, d, eps] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [r, vectors, px, pg, pdy, pdx, pdg, pdb] = Array.from({ length: 8 }, () => f.local(i32)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const m = { mean: f.local(v128), rstd: f.local(v128) };
  const [g, xhat, vdy, c1, c2] = [f.local(v128), f.local(v128), f.local(v128), f.local(v128), f.local(v128)];
  f.get(d).i32Const(4).op(0x6d /* div_s */).set(vectors);
  // Zero dgamma and dbeta.
  f.get(dgamma).set(pdg).get(dbeta).set(pdb);
  vectorLoop(f, vectors, [pdg, pdb], () => {
    f.get(pdg).v128Zero().v128Store();
    f.get(pdb).v128Zero().v128Store();
  });
  const pointersAtRowStart = () => {
    f.get(x).set(px).get(gamma).set(pg).get(dy).set(pdy).get(dx).set(pdx);
    f.get(dgamma).set(pdg).get(dbeta).set(pdb);
  };
  const loadGAndXhat = () => {
    f.get(pdy).v128Load().set(vdy);
    f.get(vdy).get(pg).v128Load().f32x4Mul().set(g);
    f.get(px).v128Load().get(m.mean).f32x4Sub().get(m.rstd).f32x4Mul().set(xhat);
  };
  f.forRange(r, rows, () => {
    rowMoments(f, x, vectors, d, eps, m);
    pointersAtRowStart();
    f.v128Zero().set(c1).v128Zero().set(c2);
    vectorLoop(f, vectors, [px, pg, pdy, pdg, pdb], () => {
      loadGAndXhat();
      f.get(c1).get(g).f32x4Add().set(c1);
      f.get(c2).get(g).get(xhat).f32x4Mul().f32x4Add().set(c2);
      f.get(pdg).get(pdg).v128Load().get(vdy).get(xhat).f32x4Mul().f32x4Add().v128Store();
      f.get(pdb).get(pdb).v128Load().get(vdy).f32x4Add().v128Store();
    });
    horizontalSum(f, c1);
    f.get(d).f32ConvertI32().f32Div().f32x4Splat().set(c1);
    horizontalSum(f, c2);
    f.get(d).f32ConvertI32().f32Div().f32x4Splat().set(c2);
    pointersAtRowStart();
    vectorLoop(f, vectors, [px, pg, pdy, pdx], () => {
      loadGAndXhat();
      f.get(pdx);
      f.get(g).get(c1).f32x4Sub().get(xhat).get(c2).f32x4Mul().f32x4Sub().get(m.rstd).f32x4Mul();
      f.v128Store();
    });
    for (const p of [x, dy, dx]) f.get(p).get(d).i32Const(4).mul().add().set(p);
  });
  return f;
}

/** softmaxGrad(y, dy, dx, rows, d): dx = (dy - Σ dy·y)·y per row; d % 4 = 0. */
function softmaxGrad(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32]);
  const [y, dy, dx, rows, d] = [0, 1, 2, 3, 4];
  const [r, vectors, py, pdy] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
  const [acc, s] = [f.local(v128), f.local(v128)];
  f.get(d).i32Const(4).op(0x6d /* div_s */).set(vectors);
  f.forRange(r, rows, () => {
    f.get(y).set(py).get(dy).set(pdy).v128Zero().set(acc);
    vectorLoop(f, vectors, [py, pdy], () => {
      f.get(acc).get(py).v128Load().get(pdy).v128Load().f32x4Mul().f32x4Add().set(acc);
    });
    horizontalSum(f, acc);
    f.f32x4Splat().set(s);
    vectorLoop(f, vectors, [y, dy, dx], () => {
      f.get(dx).get(dy).v128Load().get(s).f32x4Sub().get(y).v128Load().f32x4Mul().v128Store();
    });
  });
  return f;
}

/**
 * causalSoftmax(s, p, rows, cols, offset, scale, tmp): row i of P = softmax(scale · S[i][0..n)) with
 * n = min(cols, i + offset + 1) (the causal mask), zero beyond; S and P rows `cols` floats, may be
 * the same memory. Only S[i][0..n) is read (the rest may be unset). `tmp`: 16 bytes of scratch.
 */
function causalSoftmax(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, f32, i32]);
  const [s, p, rows, cols, offset, scale, tmp] = indices(7);
  const [r, valid, vectors, j, ps, pp] = f.locals(i32, 6);
  const [vmax, v, vsum, vscale, vshift] = f.locals(v128, 5);
  const [smax, ssum] = f.locals(f32, 2);
  const t = temps(f);
  const k = new Constants(f).declare(...EXP_CONSTANTS);
  f.get(scale).f32x4Splat().set(vscale);
  f.forRange(r, rows, () => {
    // valid = min(cols, r + offset + 1), at least 0
    f.get(r).get(offset).add().i32Const(1).add().set(valid);
    f.get(valid).get(cols).get(valid).get(cols).ltS().select().set(valid);
    f.get(valid).i32Const(0).get(valid).i32Const(0).geS().select().set(valid);
    f.get(valid).i32Const(2).op(0x75 /* shr_s */).set(vectors);
    // Max over the valid entries.
    f.f32Const(Number.NEGATIVE_INFINITY).f32x4Splat().set(vmax);
    f.get(s).set(ps);
    f.forRange(j, vectors, () => {
      f.get(vmax).get(ps).v128Load().f32x4Pmax().set(vmax);
      f.increment(ps, 16);
    });
    f.get(vmax).f32x4ExtractLane(0).get(vmax).f32x4ExtractLane(1).f32Max();
    f.get(vmax).f32x4ExtractLane(2).f32Max().get(vmax).f32x4ExtractLane(3).f32Max().set(smax);
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(valid).geS().brIf(1);
        f.get(smax).get(ps).f32Load().f32Max().set(smax);
        f.increment(ps, 4).increment(j, 1).br(0);
      }),
    );
    // e = exp(scale·(s - max)) into p, summed.
    f.get(smax).f32x4Splat().set(vshift);
    f.v128Zero().set(vsum);
    f.get(s).set(ps).get(p).set(pp);
    f.forRange(j, vectors, () => {
      f.get(ps).v128Load().get(vshift).f32x4Sub().get(vscale).f32x4Mul().set(v);
      emitExp(k, v, t);
      f.set(v);
      f.get(pp).get(v).v128Store();
      f.get(vsum).get(v).f32x4Add().set(vsum);
      f.increment(ps, 16).increment(pp, 16);
    });
    // The last valid % 4 entries through `tmp` (padded with -inf: exp gives 0).
    f.get(tmp).f32Const(Number.NEGATIVE_INFINITY).f32x4Splat().v128Store();
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(valid).geS().brIf(1);
        f.get(tmp).get(j).i32Const(3).op(0x71 /* and */).i32Const(4).mul().add();
        f.get(ps).f32Load().f32Store();
        f.increment(ps, 4).increment(j, 1).br(0);
      }),
    );
    f.get(tmp).v128Load().get(vshift).f32x4Sub().get(vscale).f32x4Mul().set(v);
    emitExp(k, v, t);
    f.set(v);
    f.get(tmp).get(v).v128Store();
    f.get(vsum).get(v).f32x4Add().set(vsum);
    f.get(vsum).f32x4ExtractLane(0).get(vsum).f32x4ExtractLane(1).f32Add();
    f.get(vsum).f32x4ExtractLane(2).f32Add().get(vsum).f32x4ExtractLane(3).f32Add().set(ssum);
    // Normalise.
    f.f32Const(1).get(ssum).f32Div().set(ssum);
    f.get(ssum).f32x4Splat().set(vsum);
    f.get(p).set(pp);
    f.forRange(j, vectors, () => {
      f.get(pp).get(pp).v128Load().get(vsum).f32x4Mul().v128Store();
      f.increment(pp, 16);
    });
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(valid).geS().brIf(1);
        f.get(pp).get(tmp).get(j).i32Const(3).op(0x71 /* and */).i32Const(4).mul().add().f32Load();
        f.get(ssum).f32Mul().f32Store();
        f.increment(pp, 4).increment(j, 1).br(0);
      }),
    );
    // Zeros past the diagonal.
    f.block(() =>
      f.loop(() => {
        f.get(j).get(cols).geS().brIf(1);
        f.get(pp).f32Const(0).f32Store();
        f.increment(pp, 4).increment(j, 1).br(0);
      }),
    );
    f.get(s).get(cols).i32Const(4).mul().add().set(s);
    f.get(p).get(cols).i32Const(4).mul().add().set(p);
  });
  return f;
}

/**
 * causalSoftmaxGrad(p, dp, ds, rows, cols, offset, scale): dS = scale · P ⊙ (dP - Σ_j P·dP) over
 * each row's valid entries (j <= i + offset), zero beyond; dP is read only where valid.
 */
function causalSoftmaxGrad(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, f32]);
  const [p, dp, ds, rows, cols, offset, scale] = indices(7);
  const [r, valid, vectors, j, pp, pdp, pds] = f.locals(i32, 7);
  const [acc, vdot, vscale] = f.locals(v128, 3);
  const dot = f.local(f32);
  f.get(scale).f32x4Splat().set(vscale);
  f.forRange(r, rows, () => {
    f.get(r).get(offset).add().i32Const(1).add().set(valid);
    f.get(valid).get(cols).get(valid).get(cols).ltS().select().set(valid);
    f.get(valid).i32Const(0).get(valid).i32Const(0).geS().select().set(valid);
    f.get(valid).i32Const(2).op(0x75 /* shr_s */).set(vectors);
    f.v128Zero().set(acc);
    f.get(p).set(pp).get(dp).set(pdp);
    f.forRange(j, vectors, () => {
      f.get(acc).get(pp).v128Load().get(pdp).v128Load().f32x4Mul().f32x4Add().set(acc);
      f.increment(pp, 16).increment(pdp, 16);
    });
    horizontalSum(f, acc);
    f.set(dot);
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(valid).geS().brIf(1);
        f.get(dot).get(pp).f32Load().get(pdp).f32Load().f32Mul().f32Add().set(dot);
        f.increment(pp, 4).increment(pdp, 4).increment(j, 1).br(0);
      }),
    );
    f.get(dot).f32x4Splat().set(vdot);
    f.get(p).set(pp).get(dp).set(pdp).get(ds).set(pds);
    f.forRange(j, vectors, () => {
      f.get(pds)
        .get(pdp)
        .v128Load()
        .get(vdot)
        .f32x4Sub()
        .get(pp)
        .v128Load()
        .f32x4Mul()
        .get(vscale)
        .f32x4Mul();
      f.v128Store();
      f.increment(pp, 16).increment(pdp, 16).increment(pds, 16);
    });
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(valid).geS().brIf(1);
        f.get(pds)
          .get(pdp)
          .f32Load()
          .get(dot)
          .f32Sub()
          .get(pp)
          .f32Load()
          .f32Mul()
          .get(scale)
          .f32Mul()
          .f32Store();
        f.increment(pp, 4).increment(pdp, 4).increment(pds, 4).increment(j, 1).br(0);
      }),
    );
    f.block(() =>
      f.loop(() => {
        f.get(j).get(cols).geS().brIf(1);
        f.get(pds).f32Const(0).f32Store();
        f.increment(pds, 4).increment(j, 1).br(0);
      }),
    );
    for (const x of [p, dp, ds]) f.get(x).get(cols).i32Const(4).mul().add().set(x);
  });
  return f;
}

/**
 * columnSums(x, out, rows, cols): out[j] = Σ_r x[r][j], adding row by row from row 0 in float32 (the
 * wasm Sum kernel's order: the same result bit for bit).
 */
function columnSums(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32]);
  const [x, out, rows, cols] = indices(4);
  const [r, j, vectors, po] = f.locals(i32, 4);
  f.get(cols).i32Const(2).op(0x75 /* shr_s */).set(vectors);
  f.forRange(j, cols, () => {
    f.get(out).get(j).i32Const(4).mul().add().f32Const(0).f32Store();
  });
  f.forRange(r, rows, () => {
    f.get(out).set(po);
    f.forRange(j, vectors, () => {
      f.get(po).get(po).v128Load().get(x).v128Load().f32x4Add().v128Store();
      f.increment(po, 16).increment(x, 16);
    });
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(cols).geS().brIf(1);
        f.get(po).get(po).f32Load().get(x).f32Load().f32Add().f32Store();
        f.increment(po, 4).increment(x, 4).increment(j, 1).br(0);
      }),
    );
  });
  return f;
}

/**
 * crossEntropyGrad(p, targets, dx, rows, d, scale): the gradient of a mean cross-entropy from its
 * softmax P: dx[i] = scale·(P[i] - onehot(targets[i])) for a target in [0, d), zero for any other
 * (ignored) target. targets are int32; any d.
 */
function crossEntropyGrad(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, f32]);
  const [p, targets, dx, rows, d, scale] = indices(6);
  const [r, t, vectors, j, pp, pdx] = f.locals(i32, 6);
  const s = f.local(f32);
  const vs = f.local(v128);
  f.get(d).i32Const(2).op(0x75 /* shr_s */).set(vectors);
  f.forRange(r, rows, () => {
    f.get(targets).i32Load().set(t);
    // s = scale where 0 <= t < d (unsigned compare), else 0.
    f.get(scale).f32Const(0).get(t).get(d).ltU().select().set(s);
    f.get(s).f32x4Splat().set(vs);
    f.get(p).set(pp).get(dx).set(pdx);
    f.forRange(j, vectors, () => {
      f.get(pdx).get(pp).v128Load().get(vs).f32x4Mul().v128Store();
      f.increment(pp, 16).increment(pdx, 16);
    });
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(d).geS().brIf(1);
        f.get(pdx).get(pp).f32Load().get(s).f32Mul().f32Store();
        f.increment(pp, 4).increment(pdx, 4).increment(j, 1).br(0);
      }),
    );
    f.get(t)
      .get(d)
      .ltU()
      .ifElse(() => {
        f.get(dx).get(t).i32Const(4).mul().add().set(pdx);
        f.get(pdx).get(pdx).f32Load().get(s).f32Sub().f32Store();
      });
    f.get(p).get(d).i32Const(4).mul().add().set(p);
    f.get(dx).get(d).i32Const(4).mul().add().set(dx);
    f.increment(targets, 4);
  });
  return f;
}

export function fusedModuleBytes(shared: boolean): Uint8Array {
  const builders: Record<(typeof FUSED_FUNCTIONS)[number], FunctionBuilder> = {
    geluNew: geluNew(),
    geluNewGrad: geluNewGrad(),
    layerNorm: layerNorm(),
    layerNormGrad: layerNormGrad(),
    softmaxGrad: softmaxGrad(),
    causalSoftmax: causalSoftmax(),
    causalSoftmaxGrad: causalSoftmaxGrad(),
    columnSums: columnSums(),
    crossEntropyGrad: crossEntropyGrad(),
  };
  return buildModule(
    FUSED_FUNCTIONS.map((name) => ({ name, fn: builders[name] })),
    shared,
  );
}
