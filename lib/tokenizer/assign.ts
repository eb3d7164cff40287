// Collision-free code assignment (beyond the paper): after training, ids whose nearest-codeword
// K-tuple is already taken by a better-fitting id move to the cheapest free K-tuple, so that every
// id of the table is named by K codes of its own. The tokenizer's weights and its pure `encode`
// (nearest codewords, used for new ids at serving time) are unchanged; only the code table of the
// ids known at training time is affected.
//
// Cost of a tuple (c_1..c_K) for an id = sum_k ||a_k - C_k[c_k]||^2 (a_k: the id's k-th encoder
// output), so the nearest-codeword tuple is the cheapest one, and a displaced id gets the next
// cheapest tuple that no other id holds. Enumeration of tuples in increasing cost is a best-first
// search over the per-codebook rankings (K small, few steps: most neighbouring tuples are free).
import type { Tokenizer } from './model.js';
import { codewordDistances } from './vq.js';

export interface AssignmentStats {
  /** Ids given a tuple other than their nearest-codeword one. */
  reassigned: number;
  /** Mean over reassigned ids of (cost of the new tuple / cost of the nearest tuple - 1). */
  meanCostIncrease: number;
  /** Mean number of codes (of K) that a reassigned id changed. */
  meanCodesChanged: number;
}

/**
 * Unique tuples for the ids marked eligible.
 *
 * codes: (n * K) nearest-codeword codes, row-major, values in [0, L).
 * distances: for a list of ids, their squared distances to every codeword, (ids.length * K * L)
 *   laid out (id, k, l); called once, with the ids that need a new tuple and their rivals.
 * opts.eligible: (n) 1 = take part (default all); ineligible ids (e.g. unseen users, which serving
 *   encodes like any new id) keep their codes and hold no tuple.
 * opts.held: (h * K) tuples already held by ids outside `codes` (a serving table): they are never
 *   taken, whatever the cost (new ids are assigned around the existing ones).
 *
 * Within a group of ids sharing a tuple, the id with the lowest cost keeps it (ties: lowest id);
 * the others, in ascending id order, take the cheapest tuple held by no one. Deterministic.
 * Returns the new (n * K) table and the statistics.
 */
export async function assignUniqueCodes(
  codes: Int32Array,
  K: number,
  L: number,
  distances: (ids: Int32Array) => Promise<Float32Array>,
  opts: { eligible?: ArrayLike<number>; held?: Int32Array } = {},
): Promise<{ codes: Int32Array; stats: AssignmentStats }> {
  const { eligible, held } = opts;
  const n = codes.length / K;
  if (!Number.isInteger(n)) throw new RangeError(`assignUniqueCodes: ${codes.length} codes is not a multiple of K = ${K}`);
  if (eligible && eligible.length !== n) throw new RangeError(`assignUniqueCodes: eligible has ${eligible.length} entries for ${n} ids`);
  const out = Int32Array.from(codes);
  const none = { reassigned: 0, meanCostIncrease: 0, meanCodesChanged: 0 };
  const key = (c: ArrayLike<number>, o = 0) => {
    let s = 0;
    for (let k = 0; k < K; k++) s = s * L + c[o + k]; // exact while L^K < 2^53
    return s;
  };
  if (Math.pow(L, K) > Number.MAX_SAFE_INTEGER) throw new RangeError(`assignUniqueCodes: L^K = ${L}^${K} is too many tuples to index`);

  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (eligible && !eligible[i]) continue;
    const t = key(codes, i * K);
    const g = groups.get(t);
    if (g) g.push(i);
    else groups.set(t, [i]);
  }
  const heldKeys = new Set<number>();
  if (held) {
    if (held.length % K) throw new RangeError(`assignUniqueCodes: ${held.length} held codes is not a multiple of K = ${K}`);
    for (let o = 0; o < held.length; o += K) heldKeys.add(key(held, o));
  }
  const contested = [...groups.entries()].filter(([t, g]) => g.length > 1 || heldKeys.has(t)).map(([, g]) => g);
  if (!contested.length) return { codes: out, stats: none };

  const ids = Int32Array.from(contested.flat()).sort();
  const row = new Map<number, number>();
  ids.forEach((id, r) => row.set(id, r));
  const D = await distances(ids);
  if (D.length !== ids.length * K * L) throw new RangeError(`assignUniqueCodes: distances gave ${D.length} values for ${ids.length} ids, expected ${ids.length * K * L}`);
  const cost = (id: number, c: ArrayLike<number>) => {
    const o = row.get(id)! * K * L;
    let s = 0;
    for (let k = 0; k < K; k++) s += D[o + k * L + c[k]];
    return s;
  };

  const taken = new Set([...groups.keys(), ...heldKeys]);
  const displaced: number[] = [];
  for (const g of contested) {
    // A tuple held from outside stays there; otherwise the best-fitting id of the group keeps it.
    const kept = heldKeys.has(key(codes, g[0] * K))
      ? -1
      : g.reduce((best, id) => {
          const cb = cost(best, codes.subarray(best * K, best * K + K)), ci = cost(id, codes.subarray(id * K, id * K + K));
          return ci < cb || (ci === cb && id < best) ? id : best;
        });
    for (const id of g) if (id !== kept) displaced.push(id);
  }
  displaced.sort((a, b) => a - b);

  let sumRel = 0, sumChanged = 0;
  for (const id of displaced) {
    const o = row.get(id)! * K * L;
    const own = codes.subarray(id * K, id * K + K);
    // Per codebook, codewords by increasing distance; the id's own code first (its nearest one,
    // whatever float rounding says about near-ties).
    const rank = Array.from({ length: K }, (_, k) => {
      const r = Array.from({ length: L }, (_, l) => l).filter((l) => l !== own[k]);
      r.sort((a, b) => D[o + k * L + a] - D[o + k * L + b] || a - b);
      return [own[k], ...r];
    });
    const tupleOf = (ranks: number[]) => ranks.map((r, k) => rank[k][r]);
    const frontier: { ranks: number[]; cost: number }[] = [{ ranks: new Array(K).fill(0), cost: cost(id, own) }];
    const seen = new Set<string>([frontier[0].ranks.join(',')]);
    let chosen: number[] | undefined;
    while (frontier.length) {
      let b = 0;
      for (let j = 1; j < frontier.length; j++) if (frontier[j].cost < frontier[b].cost) b = j;
      const { ranks } = frontier[b];
      frontier[b] = frontier[frontier.length - 1];
      frontier.pop();
      const t = tupleOf(ranks);
      if (!taken.has(key(t))) {
        chosen = t;
        break;
      }
      for (let k = 0; k < K; k++) {
        if (ranks[k] + 1 >= L) continue;
        const next = ranks.slice();
        next[k]++;
        const s = next.join(',');
        if (seen.has(s)) continue;
        seen.add(s);
        frontier.push({ ranks: next, cost: cost(id, tupleOf(next)) });
      }
    }
    if (!chosen) throw new Error(`assignUniqueCodes: no free tuple left for id ${id} (more ids than L^K tuples)`);
    taken.add(key(chosen));
    out.set(chosen, id * K);
    const c0 = cost(id, own), c1 = cost(id, chosen);
    sumRel += c0 > 0 ? c1 / c0 - 1 : 0;
    sumChanged += chosen.filter((c, k) => c !== own[k]).length;
  }
  const m = displaced.length;
  return {
    codes: out,
    stats: { reassigned: m, meanCostIncrease: sumRel / m, meanCodesChanged: sumChanged / m },
  };
}

/**
 * The `distances` argument of assignUniqueCodes for rows of `vectors` ((n * dim), the input the
 * tokenizer encoded) under a trained tokenizer. codebooks: tok.codebooks(), read once by the caller
 * (it copies the parameters) and reused while the tokenizer is frozen.
 */
export function tokenizerDistances(tok: Tokenizer, vectors: Float32Array, codebooks: Float32Array): (ids: Int32Array) => Promise<Float32Array> {
  const { K, L, dc } = tok.config;
  const dim = tok.dim;
  return async (ids) => {
    const x = new Float32Array(ids.length * dim);
    ids.forEach((id, j) => x.set(vectors.subarray(id * dim, (id + 1) * dim), j * dim));
    return codewordDistances(await tok.encoderOutputs(x), codebooks, K, L, dc);
  };
}
