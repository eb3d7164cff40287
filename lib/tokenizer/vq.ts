// Batched nearest-codeword search and k-means (native), plus a plain TypeScript reference of the
// search used by the tests and the benchmark.
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

/** The same search as a direct loop over codewords (float64 accumulation); the reference. */
export function vqNearestNaive(a: Float32Array, codebooks: Float32Array, K: number, dim: number): { idx: Int32Array; dist: Float32Array } {
  const B = a.length / (K * dim);
  const L = codebooks.length / (K * dim);
  if (!Number.isInteger(B) || !Number.isInteger(L)) throw new RangeError('vqNearestNaive: lengths are not multiples of K * dim');
  const idx = new Int32Array(B * K);
  const dist = new Float32Array(B * K);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      const ao = (b * K + k) * dim;
      let best = Infinity;
      let bi = 0;
      for (let l = 0; l < L; l++) {
        const co = (k * L + l) * dim;
        let s = 0;
        for (let e = 0; e < dim; e++) {
          const d = a[ao + e] - codebooks[co + e];
          s += d * d;
        }
        if (s < best) {
          best = s;
          bi = l;
        }
      }
      idx[b * K + k] = bi;
      dist[b * K + k] = best;
    }
  }
  return { idx, dist };
}

/** Lloyd's k-means (k-means++ seeding) of N rows of `dim`; resolves to L centroids and the final MSE. */
export async function kmeans(data: Float32Array, dim: number, L: number, opts: { iters?: number; seed?: number } = {}): Promise<{ centroids: Float32Array; mse: number }> {
  return nativeKmeans()({ data, dim, L, iters: opts.iters ?? 10, seed: opts.seed ?? 1 });
}
