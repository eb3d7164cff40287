// Batched nearest-codeword search and k-means (native), plus plain TypeScript references: the
// distances to every codeword (also what the collision-free assignment ranks) and the search
// built on them, used by the tests and the benchmark.
import { resolveBackend, type Backend } from '../native/addon.js';
import { nativeKmeans, nativeVqNearest } from './native.js';

export interface VqNearestOptions {
  /** (B * K * dim) encoder outputs, laid out (B, K, dim). */
  a: Float32Array;
  /** (K * L * dim) codebooks, laid out (K, L, dim). */
  codebooks: Float32Array;
  K: number;
  dim: number;
  backend?: Backend;
}

/**
 * Nearest codeword of every (sample, codebook): idx (B * K) and squared distances dist (B * K).
 * Ties go to the lowest index. Runs off the event loop; the arrays are read in place.
 */
export async function vqNearest(o: VqNearestOptions): Promise<{ idx: Int32Array; dist: Float32Array }> {
  return nativeVqNearest()({ a: o.a, codebooks: o.codebooks, K: o.K, dim: o.dim, backend: resolveBackend(o.backend) });
}

/**
 * Squared distances of encoder outputs to every codeword of their codebook: a (m * K * dc) laid out
 * (m, K, dc), codebooks (K * L * dc) laid out (K, L, dc) -> (m * K * L) laid out (m, K, l).
 * Float64 accumulation; the exact difference form, so near-ties rank as the native search does.
 */
export function codewordDistances(a: Float32Array, codebooks: Float32Array, K: number, L: number, dc: number): Float32Array {
  const m = a.length / (K * dc);
  if (!Number.isInteger(m) || codebooks.length !== K * L * dc) throw new RangeError('codewordDistances: shapes do not match (m, K, dc) and (K, L, dc)');
  const out = new Float32Array(m * K * L);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < K; k++) {
      const ao = (i * K + k) * dc;
      for (let l = 0; l < L; l++) {
        const co = (k * L + l) * dc;
        let s = 0;
        for (let e = 0; e < dc; e++) {
          const d = a[ao + e] - codebooks[co + e];
          s += d * d;
        }
        out[(i * K + k) * L + l] = s;
      }
    }
  }
  return out;
}

/** The same search as a direct loop over codewords (float64 accumulation); the reference. */
export function vqNearestNaive(a: Float32Array, codebooks: Float32Array, K: number, dim: number): { idx: Int32Array; dist: Float32Array } {
  const B = a.length / (K * dim);
  const L = codebooks.length / (K * dim);
  if (!Number.isInteger(B) || !Number.isInteger(L)) throw new RangeError('vqNearestNaive: lengths are not multiples of K * dim');
  const all = codewordDistances(a, codebooks, K, L, dim);
  const idx = new Int32Array(B * K);
  const dist = new Float32Array(B * K);
  for (let o = 0; o < B * K; o++) {
    let bi = 0;
    for (let l = 1; l < L; l++) if (all[o * L + l] < all[o * L + bi]) bi = l; // ties: lowest index
    idx[o] = bi;
    dist[o] = all[o * L + bi];
  }
  return { idx, dist };
}

/** Lloyd's k-means (k-means++ seeding) of N rows of `dim`; resolves to L centroids and the final MSE. */
export async function kmeans(data: Float32Array, dim: number, L: number, opts: { iters?: number; seed?: number } = {}): Promise<{ centroids: Float32Array; mse: number }> {
  return nativeKmeans()({ data, dim, L, iters: opts.iters ?? 10, seed: opts.seed ?? 1 });
}
