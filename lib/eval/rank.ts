// Full-ranking evaluation through the native kernel (native/src/cpu/rank.cc, src/cuda/rank.cu).
import { nativeFunction, resolveBackend, type Backend } from '../native/addon.js';
import type { Csr } from '../data/types.js';

export type Similarity = 'dot' | 'cosine';

export interface RankOptions {
  /** (B * dim) user (query) vectors, row-major. */
  users: Float32Array;
  /** (N * dim) item vectors, row-major. */
  items: Float32Array;
  dim: number;
  /** (B) target item of each user. */
  targets: Int32Array;
  /** Items to leave out of each user's ranking (CSR with B rows); the target may not be among them. */
  exclude?: Csr;
  similarity?: Similarity;
  backend?: Backend;
}

type RankTargetsFn = (o: {
  users: Float32Array;
  items: Float32Array;
  dim: number;
  targets: Int32Array;
  excludePtr?: Int32Array;
  excludeIdx?: Int32Array;
  similarity: Similarity;
  backend: 'cpu' | 'cuda';
}) => Promise<Int32Array>;

/**
 * Rank of each user's target among all items (1-based; items scoring >= the target count
 * against it; excluded items do not count). Runs off the event loop; the typed arrays are read
 * in place, without copies, so do not modify them until the Promise settles.
 */
export async function rankTargets(o: RankOptions): Promise<Int32Array> {
  return nativeFunction<RankTargetsFn>('rankTargets')({
    users: o.users,
    items: o.items,
    dim: o.dim,
    targets: o.targets,
    excludePtr: o.exclude?.ptr,
    excludeIdx: o.exclude?.idx,
    similarity: o.similarity ?? 'dot',
    backend: resolveBackend(o.backend),
  });
}
