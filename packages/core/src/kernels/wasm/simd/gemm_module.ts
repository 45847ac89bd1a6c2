// The GEMM module: C[m x n] (+)= A[m x k] · B[k x n] in float32 with WebAssembly SIMD, in the
// GotoBLAS/BLIS shape: A and B are packed into panels (A: MR rows interleaved per k, B: NR columns
// per k; transposes are absorbed by the packing), and a register-blocked micro-kernel computes one
// MR x NR tile of C over a range of k with MR·NR/4 accumulators held in registers.
//
// Why not XNNPACK (what tfjs-wasm uses): it ran at 22-25 GFLOP/s on the bench machine, it packs
// the weights again for every new tensor (every gradient), and it has no transposed or batched
// path. Why MR=4, NR=8 with one k per iteration: V8 (TurboFan) keeps the 8 accumulators, 2 B
// vectors and a broadcast in x64's 15 allocatable SIMD registers; unrolled bodies get their loads
// hoisted and spill (measured: 2-3x slower), and larger tiles spill too.
import { buildModule, FunctionBuilder, i32, v128 } from './wasm_builder.js';

/** Rows of A per micro-tile. */
export const MR = 4;
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
] as const;
const KERNEL = 0;

/**
 * kernel(a, b, c, ldc, kc, accumulate): C[MR x NR] at c (rows ldc bytes apart) = (C +) Σ_k
 * a[k][0..MR) ⊗ b[k][0..NR), with a packed as [kc][MR] and b as [kc][NR] floats.
 */
function kernel(): FunctionBuilder {
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
          f.get(x).get(s).get(bv[v]!).f32x4Mul().f32x4Add().set(x);
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
 * packContiguous(src, innerStride, panels, inner, dst) for a width of 4 or 8 floats that lie
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
      for (let v = 0; v < width / 4; v++)
        f.get(dst)
          .get(s)
          .v128Load(16 * v)
          .v128Store(16 * v);
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
        for (let g = 0; g < width / 4; g++) {
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
        for (const row of rows) f.increment(row, 16);
        f.increment(dst, 16 * width)
          .increment(k, 4)
          .br(0);
      }),
    );
  });
  return f;
}

/** The module's bytes; `shared` for a SharedArrayBuffer memory (the threaded WASM build). */
export function gemmModuleBytes(shared: boolean): Uint8Array {
  const builders: Record<(typeof GEMM_FUNCTIONS)[number], FunctionBuilder> = {
    kernel: kernel(),
    rowPanels: rowPanels(),
    packGeneric: packGeneric(),
    packContiguousA: packContiguous(MR),
    packContiguousB: packContiguous(NR),
    packTransposedA: packTransposed(MR),
    packTransposedB: packTransposed(NR),
  };
  return buildModule(
    GEMM_FUNCTIONS.map((name) => ({ name, fn: builders[name] })),
    shared,
  );
}
