// The Moore-Penrose pseudo-inverse of a small symmetric matrix, in float64 on the host: what PEFT's
// LoRA-FA optimizer takes of `A·Aᵀ + 1e-8·I` (an r×r matrix) with `torch.linalg.pinv`.

/** float32's machine epsilon: torch.linalg.pinv's default `rtol` is `eps · max(rows, cols)`. */
const FLOAT32_EPS = 2 ** -23;

/**
 * Eigenvalues and eigenvectors of a symmetric `n×n` matrix (row-major) by cyclic Jacobi rotations.
 * Returns `values[k]` and `vectors` with eigenvector k in column k.
 */
export function symmetricEigen(
  matrix: ArrayLike<number>,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  if (matrix.length !== n * n)
    throw new Error(`symmetricEigen: expected ${n * n} values, got ${matrix.length}`);
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const x = a[i * n + j]! ** 2;
        total += x;
        if (i !== j) off += x;
      }
    }
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const app = a[p * n + p]!;
        const aqq = a[q * n + q]!;
        // The rotation that zeroes a[p][q] (Golub & Van Loan, Algorithm 8.4.1).
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]!;
  return { values, vectors: v };
}

/**
 * `pinv(M)` of a symmetric `n×n` matrix (row-major), as `torch.linalg.pinv` with its default
 * tolerance for a float32 input: singular values (here |eigenvalues|) at or below
 * `n · eps_float32 · σ_max` are treated as zero.
 */
export function symmetricPseudoInverse(matrix: ArrayLike<number>, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, n);
  let largest = 0;
  for (const value of values) largest = Math.max(largest, Math.abs(value));
  const cutoff = n * FLOAT32_EPS * largest;
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const value = values[k]!;
    if (!(Math.abs(value) > cutoff)) continue;
    const inverse = 1 / value;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k]! * inverse;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * vectors[j * n + k]!;
    }
  }
  return out;
}

/**
 * `pinv(A·Aᵀ + δ·I)` for `A` given row-major as `[r, columns]` (float32 values), the matrix PEFT's
 * LoRA-FA optimizer projects B's gradient with (δ = 1e-8). `A·Aᵀ` is formed in float64.
 */
export function loraFaProjection(
  a: ArrayLike<number>,
  r: number,
  columns: number,
  delta = 1e-8,
): Float64Array {
  if (a.length !== r * columns)
    throw new Error(`loraFaProjection: expected ${r * columns} values, got ${a.length}`);
  const m = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = i; j < r; j++) {
      let sum = 0;
      for (let k = 0; k < columns; k++) sum += a[i * columns + k]! * a[j * columns + k]!;
      m[i * r + j] = sum;
      m[j * r + i] = sum;
    }
    m[i * r + i]! += delta;
  }
  return symmetricPseudoInverse(m, r);
}
