// Seeded synthetic "collaborative" vectors for tests and benchmarks of the tokenizer, before real
// CF vectors exist: a mixture of Gaussian clusters (as CF embeddings group users/items by taste),
// with cluster sizes skewed like item popularity.
import { seededRandom } from '../data/split.js';

export interface ClusteredVectorsOptions {
  n: number;
  dim?: number;
  clusters?: number;
  /** Standard deviation inside a cluster, relative to the spread of the cluster centres (1). */
  spread?: number;
  seed?: number;
}

/** (n * dim) row-major vectors. */
export function clusteredVectors(o: ClusteredVectorsOptions): Float32Array {
  const dim = o.dim ?? 64, clusters = o.clusters ?? 64, spread = o.spread ?? 0.35;
  const rand = seededRandom(o.seed ?? 1);
  const gauss = () => {
    const u = rand() || 1e-12, v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const centres = Float64Array.from({ length: clusters * dim }, () => gauss() / Math.sqrt(dim));
  // Zipf-like cluster weights
  const w = Float64Array.from({ length: clusters }, (_, c) => 1 / (c + 1) ** 0.8);
  const total = w.reduce((a, b) => a + b, 0);
  const out = new Float32Array(o.n * dim);
  for (let i = 0; i < o.n; i++) {
    let u = rand() * total, c = 0;
    while (c < clusters - 1 && (u -= w[c]) > 0) c++;
    for (let e = 0; e < dim; e++) out[i * dim + e] = centres[c * dim + e] + (spread * gauss()) / Math.sqrt(dim);
  }
  return out;
}
