// The GEMM module: C[m x n] (+)= A[m x k] · B[k x n] in float32 with WebAssembly SIMD, in the
// GotoBLAS/BLIS shape: A and B are packed into panels (A: MR rows interleaved per k, B: NR columns
// per k; transposes are absorbed by the packing), and a register-blocked micro-kernel computes one
// MR x NR tile of C over a range of k with MR·NR/4 accumulators held in registers.
//
// Why not XNNPACK (what tfjs-wasm uses): it ran at 22-25 GFLOP/s on the bench machine, it packs
// the weights again for every new tensor (every gradient), and it has no transposed or batched
// path. Why MR=5, NR=8 with one k per iteration: V8 (TurboFan) keeps the 10 accumulators, 2 B
// vectors and a broadcast in x64's 15 allocatable SIMD registers; unrolled bodies get their loads
// hoisted and spill (measured: 2-3x slower), and larger tiles spill too. 5x8 measured 3-5% faster
// than 4x8; attention's grid products use a 4-row kernel (query and key counts are multiples of 4).
import { buildModule, FunctionBuilder, f32, i32, indices, v128 } from './wasm_builder.js';

/** Rows of A per micro-tile of the GEMM. */
export const MR = 5;
/** Rows of A per micro-tile of `grid` (attention). */
export const GRID_MR = 4;
/** Columns of B per micro-tile (two f32x4 vectors). */
export const NR = 8;
const NV = NR / 4;

/** Function indices (they are exported under these names in this order). */
export const GEMM_FUNCTIONS = [
  'kernel',
  'rowPanels',
  'packGeneric',
  'packContiguousA',
  'packContiguousB',
  'packTransposedA',
  'packTransposedB',
  'packContiguousA4',
  'packTransposedA4',
  'kernel4',
  'gemvRows',
  'gemvDots',
  'edgePanels',
  'grid',
] as const;
const KERNEL = 0;
const KERNEL4 = GEMM_FUNCTIONS.indexOf('kernel4');

/**
 * Emits `acc + x·y` (f32x4), each operand pushed by its callback: relaxed SIMD's fused multiply-add
 * (one instruction and one rounding with FMA hardware: the micro-kernel measured 1.25-1.3x faster on
 * the bench machine) or a multiply and an add.
 */
type MultiplyAdd = (f: FunctionBuilder, acc: () => void, x: () => void, y: () => void) => void;

const fusedMultiplyAdd: MultiplyAdd = (f, acc, x, y) => {
  x();
  y();
  acc();
  f.f32x4RelaxedMadd();
};

const separateMultiplyAdd: MultiplyAdd = (f, acc, x, y) => {
  acc();
  x();
  y();
  f.f32x4Mul().f32x4Add();
};

/**
 * kernel(a, b, c, ldc, kc, accumulate): C[MR x NR] at c (rows ldc bytes apart) = (C +) Σ_k
 * a[k][0..MR) ⊗ b[k][0..NR), with a packed as [kc][MR] and b as [kc][NR] floats.
 */
function kernel(MR: number, madd: MultiplyAdd): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32]);
  const [a, b, c, ldc, kc, accumulate] = [0, 1, 2, 3, 4, 5];
  const acc = Array.from({ length: MR }, () => Array.from({ length: NV }, () => f.local(v128)));
  const bv = Array.from({ length: NV }, () => f.local(v128));
  const s = f.local(v128);
  const bEnd = f.local(i32);
  const row = f.local(i32);
  for (const r of acc) for (const x of r) f.v128Zero().set(x);
  f.get(b)
    .get(kc)
    .i32Const(4 * NR)
    .mul()
    .add()
    .set(bEnd);
  f.block(() =>
    f.loop(() => {
      f.get(b).get(bEnd).geU().brIf(1);
      for (let v = 0; v < NV; v++)
        f.get(b)
          .v128Load(16 * v)
          .set(bv[v]!);
      acc.forEach((accRow, r) => {
        f.get(a)
          .v128Load32Splat(4 * r)
          .set(s);
        for (let v = 0; v < NV; v++) {
          const x = accRow[v]!;
          madd(
            f,
            () => f.get(x),
            () => f.get(s),
            () => f.get(bv[v]!),
          );
          f.set(x);
        }
      });
      f.increment(a, 4 * MR)
        .increment(b, 4 * NR)
        .br(0);
    }),
  );
  const store = (add: boolean) => {
    f.get(c).set(row);
    acc.forEach((accRow, r) => {
      accRow.forEach((x, v) => {
        f.get(row);
        if (add)
          f.get(row)
            .v128Load(16 * v)
            .get(x)
            .f32x4Add();
        else f.get(x);
        f.v128Store(16 * v);
      });
      if (r < MR - 1) f.increment(row, { local: ldc });
    });
  };
  f.get(accumulate).ifElse(
    () => store(true),
    () => store(false),
  );
  return f;
}

/**
 * rowPanels(a, aStride, b, c, cStride, ldc, kc, accumulate, count): `count` kernels down a column
 * of tiles: A panels `aStride` bytes apart, C tiles `cStride` bytes apart, the same B panel.
 */
function rowPanels(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, i32, i32, i32]);
  const [a, aStride, b, c, cStride, ldc, kc, accumulate, count] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const i = f.local(i32);
  f.forRange(i, count, () => {
    f.get(a).get(b).get(c).get(ldc).get(kc).get(accumulate).call(KERNEL);
    f.increment(a, { local: aStride }).increment(c, { local: cStride });
  });
  return f;
}

/**
 * packGeneric(src, outerStride, innerStride, outer, inner, width, dst): panels of `width` along
 * `outer`, zero-padded: dst[p][i][w] = src[(p·width + w)·outerStride + i·innerStride] (strides in
 * bytes). Scalar; used for what the SIMD packers do not cover.
 */
function packGeneric(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, i32]);
  const [src, outerStride, innerStride, outer, inner, width, dst] = [0, 1, 2, 3, 4, 5, 6];
  const [p, panels, k, w, o] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
  // panels = ceil(outer / width)
  f.get(outer).get(width).add().i32Const(1).sub().get(width).op(0x6d /* i32.div_s */).set(panels);
  f.forRange(p, panels, () => {
    f.forRange(k, inner, () => {
      f.forRange(w, width, () => {
        f.get(p).get(width).mul().get(w).add().set(o);
        f.get(o)
          .get(outer)
          .ltS()
          .ifElse(
            () => {
              f.get(dst);
              f.get(src).get(o).get(outerStride).mul().add().get(k).get(innerStride).mul().add().f32Load();
              f.f32Store();
            },
            () => {
              f.get(dst).f32Const(0).f32Store();
            },
          );
        f.increment(dst, 4);
      });
    });
  });
  return f;
}

/**
 * packContiguous(src, innerStride, panels, inner, dst) for a width of 4, 5 or 8 floats that lie
 * contiguously in memory (A stored transposed, B stored plainly): vector copies.
 */
function packContiguous(width: number): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32]);
  const [src, innerStride, panels, inner, dst] = [0, 1, 2, 3, 4];
  const [p, k, s] = [f.local(i32), f.local(i32), f.local(i32)];
  f.forRange(p, panels, () => {
    f.get(src)
      .get(p)
      .i32Const(4 * width)
      .mul()
      .add()
      .set(s);
    f.forRange(k, inner, () => {
      for (let v = 0; v < Math.floor(width / 4); v++)
        f.get(dst)
          .get(s)
          .v128Load(16 * v)
          .v128Store(16 * v);
      for (let e = 4 * Math.floor(width / 4); e < width; e++)
        f.get(dst)
          .get(s)
          .f32Load(4 * e)
          .f32Store(4 * e);
      f.increment(s, { local: innerStride }).increment(dst, 4 * width);
    });
  });
  return f;
}

/**
 * packTransposed(src, outerStride, panels, inner, dst) for elements contiguous along `inner` (A
 * stored plainly, B stored transposed), `inner` a multiple of 4: 4x4 transposes with shuffles.
 */
function packTransposed(width: number): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32]);
  const [src, outerStride, panels, inner, dst] = [0, 1, 2, 3, 4];
  const [p, k] = [f.local(i32), f.local(i32)];
  const rows = Array.from({ length: width }, () => f.local(i32));
  const r = Array.from({ length: 4 }, () => f.local(v128));
  const t = Array.from({ length: 4 }, () => f.local(v128));
  f.forRange(p, panels, () => {
    rows.forEach((row, q) => {
      f.get(src).get(p).i32Const(width).mul().i32Const(q).add().get(outerStride).mul().add().set(row);
    });
    f.i32Const(0).set(k);
    f.block(() =>
      f.loop(() => {
        f.get(k).get(inner).geS().brIf(1);
        for (let g = 0; g < Math.floor(width / 4); g++) {
          for (let q = 0; q < 4; q++)
            f.get(rows[4 * g + q]!)
              .v128Load()
              .set(r[q]!);
          f.get(r[0]!).get(r[1]!).shuffle32([0, 4, 1, 5]).set(t[0]!);
          f.get(r[0]!).get(r[1]!).shuffle32([2, 6, 3, 7]).set(t[1]!);
          f.get(r[2]!).get(r[3]!).shuffle32([0, 4, 1, 5]).set(t[2]!);
          f.get(r[2]!).get(r[3]!).shuffle32([2, 6, 3, 7]).set(t[3]!);
          const out: [number, number, [number, number, number, number]][] = [
            [0, 2, [0, 1, 4, 5]],
            [0, 2, [2, 3, 6, 7]],
            [1, 3, [0, 1, 4, 5]],
            [1, 3, [2, 3, 6, 7]],
          ];
          out.forEach(([x, y, lanes], j) => {
            f.get(dst)
              .get(t[x]!)
              .get(t[y]!)
              .shuffle32(lanes)
              .v128Store(4 * (j * width + 4 * g));
          });
        }
        // Rows past the last group of 4 (width 5): 4 k values each, stored lane by lane.
        for (let q = 4 * Math.floor(width / 4); q < width; q++) {
          f.get(rows[q]!).v128Load().set(r[0]!);
          for (let j = 0; j < 4; j++)
            f.get(dst)
              .get(r[0]!)
              .f32x4ExtractLane(j)
              .f32Store(4 * (j * width + q));
        }
        for (const row of rows) f.increment(row, 16);
        f.increment(dst, 16 * width)
          .increment(k, 4)
          .br(0);
      }),
    );
  });
  return f;
}

/**
 * gemvRows(a, aKStride, b, bRowStride, c, k, n): one row of C, `c[j] = Σ_k a[k]·b[k][j]`, for a
 * B whose rows are `bRowStride` bytes apart with contiguous columns. No packing: for a handful of
 * rows (generation's one token), packing B would cost more than the product. B streams row by row
 * (C, one row, stays in L1): `c += a[k]·b[k]` with vectors, the last n % 4 columns scalar.
 */
function gemvRows(madd: MultiplyAdd): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, i32]);
  const [a, aKStride, b, bRowStride, c, k, n] = [0, 1, 2, 3, 4, 5, 6];
  const [j, kk, vectors, pb, pc] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
  const [s, ss] = [f.local(v128), f.local(f32)];
  f.get(n).i32Const(2).op(0x75 /* shr_s */).set(vectors);
  // C = 0
  f.forRange(j, n, () => {
    f.get(c).get(j).i32Const(4).mul().add().f32Const(0).f32Store();
  });
  f.forRange(kk, k, () => {
    f.get(a).v128Load32Splat().set(s);
    f.get(a).f32Load().set(ss);
    f.get(b).set(pb).get(c).set(pc);
    f.forRange(j, vectors, () => {
      f.get(pc);
      madd(
        f,
        () => f.get(pc).v128Load(),
        () => f.get(s),
        () => f.get(pb).v128Load(),
      );
      f.v128Store();
      f.increment(pb, 16).increment(pc, 16);
    });
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(j);
    f.block(() =>
      f.loop(() => {
        f.get(j).get(n).geS().brIf(1);
        f.get(pc).get(pc).f32Load().get(ss).get(pb).f32Load().f32Mul().f32Add().f32Store();
        f.increment(pb, 4).increment(pc, 4).increment(j, 1).br(0);
      }),
    );
    f.increment(a, { local: aKStride }).increment(b, { local: bRowStride });
  });
  return f;
}

/**
 * gemvDots(a, bt, btRowStride, c, k, n): one row of C as dot products, `c[j] = Σ_k a[k]·bt[j][k]`,
 * for a B stored transposed (rows of `bt` contiguous along k) and `a` contiguous. No packing. Four
 * rows of `bt` at a time (four accumulators, reduced together by shuffles), then one at a time; the
 * last k % 4 products scalar.
 */
function gemvDots(madd: MultiplyAdd): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32]);
  const [a, bt, btRowStride, c, k, n] = indices(6);
  const [j, kk, vectors, pa, groups] = f.locals(i32, 5);
  const rows = f.locals(i32, 4);
  const acc = f.locals(v128, 4);
  const [av, t0, t1] = f.locals(v128, 3);
  const scalar = f.local(f32);
  f.get(k).i32Const(2).op(0x75 /* shr_s */).set(vectors);
  f.get(n).i32Const(2).op(0x75 /* shr_s */).set(groups);
  /** The k % 4 tail of row pointer `row` (advanced to the tail) into `scalar`, from `pa`. */
  const tail = (row: number) => {
    f.get(vectors).i32Const(2).op(0x74 /* shl */).set(kk);
    f.block(() =>
      f.loop(() => {
        f.get(kk).get(k).geS().brIf(1);
        f.get(scalar).get(pa).f32Load().get(row).f32Load().f32Mul().f32Add().set(scalar);
        f.increment(pa, 4).increment(row, 4).increment(kk, 1).br(0);
      }),
    );
  };
  // Groups of four rows.
  f.forRange(j, groups, () => {
    rows.forEach((row, q) => {
      f.get(bt).get(j).i32Const(4).mul().i32Const(q).add().get(btRowStride).mul().add().set(row);
    });
    for (const x of acc) f.v128Zero().set(x);
    f.get(a).set(pa);
    f.forRange(kk, vectors, () => {
      f.get(pa).v128Load().set(av);
      rows.forEach((row, q) => {
        madd(
          f,
          () => f.get(acc[q]!),
          () => f.get(av),
          () => f.get(row).v128Load(),
        );
        f.set(acc[q]!);
        f.increment(row, 16);
      });
      f.increment(pa, 16);
    });
    // [Σ acc0, Σ acc1, Σ acc2, Σ acc3] by two rounds of shuffles.
    f.get(acc[0]!)
      .get(acc[1]!)
      .shuffle32([0, 4, 1, 5])
      .get(acc[0]!)
      .get(acc[1]!)
      .shuffle32([2, 6, 3, 7])
      .f32x4Add();
    f.set(t0);
    f.get(acc[2]!)
      .get(acc[3]!)
      .shuffle32([0, 4, 1, 5])
      .get(acc[2]!)
      .get(acc[3]!)
      .shuffle32([2, 6, 3, 7])
      .f32x4Add();
    f.set(t1);
    f.get(t0).get(t1).shuffle32([0, 1, 4, 5]).get(t0).get(t1).shuffle32([2, 3, 6, 7]).f32x4Add().set(av);
    f.get(c).get(j).i32Const(16).mul().add().get(av).v128Store();
    // The k tails, row by row.
    const pa0 = f.local(i32);
    f.get(pa).set(pa0);
    rows.forEach((row, q) => {
      f.get(pa0).set(pa);
      f.f32Const(0).set(scalar);
      tail(row);
      f.get(c).get(j).i32Const(16).mul().add();
      f.get(c)
        .get(j)
        .i32Const(16)
        .mul()
        .add()
        .f32Load(4 * q)
        .get(scalar)
        .f32Add()
        .f32Store(4 * q);
    });
  });
  // The last n % 4 rows, one at a time.
  const [row] = f.locals(i32, 1);
  const [one] = f.locals(v128, 1);
  f.get(groups).i32Const(2).op(0x74 /* shl */).set(j);
  f.block(() =>
    f.loop(() => {
      f.get(j).get(n).geS().brIf(1);
      f.get(bt).get(j).get(btRowStride).mul().add().set(row);
      f.v128Zero().set(one);
      f.get(a).set(pa);
      f.forRange(kk, vectors, () => {
        madd(
          f,
          () => f.get(one),
          () => f.get(pa).v128Load(),
          () => f.get(row).v128Load(),
        );
        f.set(one);
        f.increment(pa, 16).increment(row, 16);
      });
      f.get(one).f32x4ExtractLane(0).get(one).f32x4ExtractLane(1).f32Add();
      f.get(one).f32x4ExtractLane(2).f32Add().get(one).f32x4ExtractLane(3).f32Add().set(scalar);
      tail(row);
      f.get(c).get(j).i32Const(4).mul().add().get(scalar).f32Store();
      f.increment(j, 1).br(0);
    }),
  );
  return f;
}

/**
 * edgePanels(a, aStride, b, c, cStride, ldc, kc, accumulate, count, rows, cols, tile): like
 * rowPanels for tiles that stick out of C (the last `rows` < MR rows or `cols` < NR columns): each
 * tile is computed whole into `tile` (MR x NR floats) and its `rows x cols` corner stored (or added).
 */
function edgePanels(): FunctionBuilder {
  const f = new FunctionBuilder([i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32]);
  const [a, aStride, b, c, cStride, ldc, kc, accumulate, count, rows, cols, tile] = indices(12);
  const [i, r, j, dst, src] = f.locals(i32, 5);
  f.forRange(i, count, () => {
    f.get(a)
      .get(b)
      .get(tile)
      .i32Const(4 * NR)
      .get(kc)
      .i32Const(0)
      .call(KERNEL);
    f.forRange(r, rows, () => {
      f.get(c).get(r).get(ldc).mul().add().set(dst);
      f.get(tile)
        .get(r)
        .i32Const(4 * NR)
        .mul()
        .add()
        .set(src);
      f.forRange(j, cols, () => {
        f.get(accumulate).ifElse(
          () => f.get(dst).get(dst).f32Load().get(src).f32Load().f32Add().f32Store(),
          () => f.get(dst).get(src).f32Load().f32Store(),
        );
        f.increment(dst, 4).increment(src, 4);
      });
    });
    f.increment(a, { local: aStride }).increment(c, { local: cStride });
  });
  return f;
}

/** `grid` modes: which part of the product is computed (attention with a causal mask). */
export const GRID_FULL = 0;
/** C[i][j] is needed only for j <= i + offset: tiles wholly above that diagonal are skipped. */
export const GRID_OUTPUT_LOWER = 1;
/** A[i][kk] is zero for kk > i + offset: each row panel's k stops after its last row's diagonal. */
export const GRID_K_LOWER = 2;
/** A[i][kk] is zero for kk < i - offset: each row panel's k starts at its first row's diagonal. */
export const GRID_K_UPPER = 3;

/**
 * grid(ap, aPanelBytes, bp, bPanelBytes, c, ldc, k, mPanels, nPanels, restN, mode, offset, tile):
 * every tile of C = A·B from packed panels in one call, for the small products of attention (k
 * fits in L1, so no k blocking), with the causal structure of `mode` skipping work. A is packed in
 * panels of GRID_MR = 4 rows, which must fill them (m = mPanels·4); the last column panel holds `restN` columns when not 0 (computed
 * into `tile`, then copied).
 */
function grid(): FunctionBuilder {
  const f = new FunctionBuilder(Array.from({ length: 13 }, () => i32));
  const [ap, aPanelBytes, bp, bPanelBytes, c, ldc, k, mPanels, nPanels, restN, mode, offset, tile] =
    indices(13);
  const [ip, jp, rowLo, kStart, kEnd, lastCol, r, j, dst, src, fullPanels, rowsPerPanel] = f.locals(i32, 12);
  f.i32Const(GRID_MR).set(rowsPerPanel);
  f.get(nPanels).get(restN).i32Const(0).op(0x47 /* ne */).sub().set(fullPanels);
  const min = (x: number, limit: number) => f.get(x).get(limit).get(x).get(limit).ltS().select().set(x);
  const maxZero = (x: number) => f.get(x).i32Const(0).get(x).i32Const(0).geS().select().set(x);
  f.forRange(ip, mPanels, () => {
    f.get(ip).i32Const(GRID_MR).mul().set(rowLo);
    // The k range of this row panel.
    f.i32Const(0).set(kStart);
    f.get(k).set(kEnd);
    f.get(mode)
      .i32Const(GRID_K_LOWER)
      .op(0x46 /* eq */)
      .ifElse(() => {
        f.get(rowLo).i32Const(GRID_MR).add().get(offset).add().set(kEnd);
        min(kEnd, k);
        maxZero(kEnd);
      });
    f.get(mode)
      .i32Const(GRID_K_UPPER)
      .op(0x46 /* eq */)
      .ifElse(() => {
        f.get(rowLo).get(offset).sub().set(kStart);
        maxZero(kStart);
        min(kStart, k);
      });
    // Columns needed (exclusive bound): all, or up to the panel's last row's diagonal.
    f.get(nPanels).i32Const(NR).mul().set(lastCol);
    f.get(mode)
      .i32Const(GRID_OUTPUT_LOWER)
      .op(0x46 /* eq */)
      .ifElse(() => {
        f.get(rowLo).i32Const(GRID_MR).add().get(offset).add().set(lastCol);
      });
    f.forRange(jp, nPanels, () => {
      // Tiles starting at or past lastCol are not needed: done with this row panel.
      f.get(jp).i32Const(NR).mul().get(lastCol).geS().brIf(1);
      const operands = () => {
        f.get(ap)
          .get(ip)
          .get(aPanelBytes)
          .mul()
          .add()
          .get(kStart)
          .i32Const(4 * GRID_MR)
          .mul()
          .add();
        f.get(bp)
          .get(jp)
          .get(bPanelBytes)
          .mul()
          .add()
          .get(kStart)
          .i32Const(4 * NR)
          .mul()
          .add();
      };
      f.get(jp)
        .get(fullPanels)
        .ltS()
        .ifElse(
          () => {
            operands();
            f.get(c)
              .get(rowLo)
              .get(ldc)
              .mul()
              .add()
              .get(jp)
              .i32Const(4 * NR)
              .mul()
              .add();
            f.get(ldc).get(kEnd).get(kStart).sub().i32Const(0).call(KERNEL4);
          },
          () => {
            operands();
            f.get(tile)
              .i32Const(4 * NR)
              .get(kEnd)
              .get(kStart)
              .sub()
              .i32Const(0)
              .call(KERNEL4);
            f.forRange(r, rowsPerPanel, () => {
              f.get(c)
                .get(rowLo)
                .get(r)
                .add()
                .get(ldc)
                .mul()
                .add()
                .get(jp)
                .i32Const(4 * NR)
                .mul()
                .add()
                .set(dst);
              f.get(tile)
                .get(r)
                .i32Const(4 * NR)
                .mul()
                .add()
                .set(src);
              f.forRange(j, restN, () => {
                f.get(dst).get(src).f32Load().f32Store();
                f.increment(dst, 4).increment(src, 4);
              });
            });
          },
        );
    });
  });
  return f;
}

/**
 * The module's bytes; `shared` for a SharedArrayBuffer memory (the threaded WASM build), `fused` to
 * multiply-add with relaxed SIMD (only where the engine has it: see `relaxedSimdSupported`).
 */
export function gemmModuleBytes(shared: boolean, fused: boolean): Uint8Array {
  const madd = fused ? fusedMultiplyAdd : separateMultiplyAdd;
  const builders: Record<(typeof GEMM_FUNCTIONS)[number], FunctionBuilder> = {
    kernel: kernel(MR, madd),
    rowPanels: rowPanels(),
    packGeneric: packGeneric(),
    packContiguousA: packContiguous(MR),
    packContiguousB: packContiguous(NR),
    packTransposedA: packTransposed(MR),
    packTransposedB: packTransposed(NR),
    packContiguousA4: packContiguous(GRID_MR),
    packTransposedA4: packTransposed(GRID_MR),
    kernel4: kernel(GRID_MR, madd),
    gemvRows: gemvRows(madd),
    gemvDots: gemvDots(madd),
    edgePanels: edgePanels(),
    grid: grid(),
  };
  return buildModule(
    GEMM_FUNCTIONS.map((name) => ({ name, fn: builders[name] })),
    shared,
  );
}
