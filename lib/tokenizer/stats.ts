// Codebook health and code-collision statistics of a tokenizer's codes.

export interface CodebookStats {
  /** Fraction of the L codewords used by at least one id. */
  utilisation: number;
  used: number;
  /** exp(entropy) of the codeword usage distribution, in [1, L]: the effective number of codewords. */
  perplexity: number;
}

export interface CollisionStats {
  ids: number;
  /** Number of distinct K-tuples among the ids. */
  distinctTuples: number;
  /** Tuples shared by two or more ids. */
  collisionGroups: number;
  /** Ids whose K-tuple is shared with at least one other id. */
  collidingIds: number;
  /** Fraction of ids with a K-tuple of their own. */
  uniqueFraction: number;
  /** Largest number of ids sharing one K-tuple. */
  maxGroupSize: number;
}

/** Per-codebook utilisation and perplexity. codes: (n * K) row-major, values in [0, L). */
export function codebookStats(codes: Int32Array, K: number, L: number): CodebookStats[] {
  const n = codes.length / K;
  const out: CodebookStats[] = [];
  for (let k = 0; k < K; k++) {
    const count = new Float64Array(L);
    for (let i = 0; i < n; i++) count[codes[i * K + k]]++;
    let used = 0;
    let h = 0;
    for (let l = 0; l < L; l++) {
      if (count[l] === 0) continue;
      used++;
      const p = count[l] / n;
      h -= p * Math.log(p);
    }
    out.push({ utilisation: used / L, used, perplexity: n ? Math.exp(h) : 0 });
  }
  return out;
}

function tupleKey(codes: Int32Array, i: number, K: number): string {
  let s = '';
  for (let k = 0; k < K; k++) s += (k ? ',' : '') + codes[i * K + k];
  return s;
}

/** Distinct K-tuples and collisions (several ids sharing all K codes). */
export function collisionStats(codes: Int32Array, K: number): CollisionStats {
  const n = codes.length / K;
  const groups = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const key = tupleKey(codes, i, K);
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  let collisionGroups = 0, collidingIds = 0, maxGroupSize = 0;
  for (const c of groups.values()) {
    if (c > 1) {
      collisionGroups++;
      collidingIds += c;
    }
    if (c > maxGroupSize) maxGroupSize = c;
  }
  return {
    ids: n,
    distinctTuples: groups.size,
    collisionGroups,
    collidingIds,
    uniqueFraction: n ? (n - collidingIds) / n : 1,
    maxGroupSize,
  };
}

/**
 * Disambiguation: appends a (K+1)-th code so that every id's tuple is unique. Ids sharing a K-tuple
 * get 0, 1, 2, ... in ascending id order; ids with a tuple of their own get 0. Returns (n * (K+1)).
 * The extra code's range is [0, maxGroupSize).
 */
export function disambiguate(codes: Int32Array, K: number): Int32Array {
  const n = codes.length / K;
  const seen = new Map<string, number>();
  const out = new Int32Array(n * (K + 1));
  for (let i = 0; i < n; i++) {
    const key = tupleKey(codes, i, K);
    const c = seen.get(key) ?? 0;
    seen.set(key, c + 1);
    out.set(codes.subarray(i * K, i * K + K), i * (K + 1));
    out[i * (K + 1) + K] = c;
  }
  return out;
}
