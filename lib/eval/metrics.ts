// HR@K and NDCG@K from 1-based ranks (one target per user, full ranking).
// rank r (ties counted against the target): HR@K = [r <= K], NDCG@K = [r <= K] / log2(r + 1).

export const DEFAULT_KS = [10, 20, 30] as const;

export interface Metrics {
  /** Users evaluated. */
  users: number;
  /** hr[K], ndcg[K]: means over the users. */
  hr: Record<number, number>;
  ndcg: Record<number, number>;
}

export function checkKs(ks: readonly number[]): void {
  if (ks.length === 0) throw new RangeError('ks must name at least one cut-off');
  for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new RangeError(`each K must be a positive integer, got ${k}`);
}

/** Per-user NDCG@K contribution of a 1-based rank. */
export function ndcgAt(rank: number, k: number): number {
  return rank >= 1 && rank <= k ? 1 / Math.log2(rank + 1) : 0;
}

export function metricsFromRanks(ranks: ArrayLike<number>, ks: readonly number[] = DEFAULT_KS): Metrics {
  checkKs(ks);
  const hr: Record<number, number> = {};
  const ndcg: Record<number, number> = {};
  const n = ranks.length;
  for (const k of ks) {
    let h = 0;
    let g = 0;
    for (let i = 0; i < n; i++) {
      const r = ranks[i];
      if (!(r >= 1)) throw new RangeError(`ranks[${i}] = ${r} is not a 1-based rank`);
      if (r <= k) {
        h += 1;
        g += 1 / Math.log2(r + 1);
      }
    }
    hr[k] = n ? h / n : 0;
    ndcg[k] = n ? g / n : 0;
  }
  return { users: n, hr, ndcg };
}

/** Formats metrics as one line per K: "HR@10 0.1234  NDCG@10 0.0567". */
export function formatMetrics(m: Metrics): string {
  return Object.keys(m.hr)
    .map(Number)
    .sort((a, b) => a - b)
    .map((k) => `HR@${k} ${m.hr[k].toFixed(4)}  NDCG@${k} ${m.ndcg[k].toFixed(4)}`)
    .join('\n');
}
