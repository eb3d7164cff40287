// Collision-free code assignment (lib/tokenizer/assign.ts): a hand-worked case, invariants on random
// tables against an exhaustive search, and the tokenizer training that uses it.
import { describe, expect, it } from 'vitest';
import { assignUniqueCodes } from '../lib/tokenizer/assign.js';
import { codewordDistances } from '../lib/tokenizer/vq.js';
import { collisionStats } from '../lib/tokenizer/stats.js';
import { trainTokenizer } from '../lib/tokenizer/train.js';
import { rng, randomVectors } from './helpers/random.js';

/** distances callback over a full (n, K, L) table. */
const table = (D: Float32Array, K: number, L: number) => async (ids: Int32Array) => {
  const out = new Float32Array(ids.length * K * L);
  ids.forEach((id, r) => out.set(D.subarray(id * K * L, (id + 1) * K * L), r * K * L));
  return out;
};

describe('assignUniqueCodes', () => {
  it('hand-worked case: the best-fitting id keeps the tuple, the others take the cheapest free one', async () => {
    // K = 2, L = 3. Ids 0, 1, 2 all nearest to (0, 0); id 3 holds (1, 0).
    // costs per id (k, l):        k=0: l0 l1 l2   k=1: l0 l1 l2
    const D = Float32Array.from([
      /* id 0 */ 1, 2, 9, /**/ 1, 5, 9, // own (0,0) = 2
      /* id 1 */ 0, 3, 4, /**/ 1, 2, 9, // own (0,0) = 1: keeps it
      /* id 2 */ 1, 1.5, 9, /**/ 1, 1.2, 9, // own (0,0) = 2
      /* id 3 */ 5, 0, 5, /**/ 0, 5, 5,
    ]);
    const codes = Int32Array.from([0, 0, 0, 0, 0, 0, 1, 0]);
    const r = await assignUniqueCodes(codes, 2, 3, table(D, 2, 3));
    // Displaced ids go in ascending order. Id 0: (1,0) = 3 is held by id 3; next (0,1) = 6 -> (0, 1).
    // Id 2: (0,1) = 2.2 now held by id 0, (1,0) = 2.5 by id 3, (1,1) = 2.7 free -> (1, 1).
    expect(Array.from(r.codes)).toEqual([0, 1, 0, 0, 1, 1, 1, 0]);
    expect(r.stats.reassigned).toBe(2);
    expect(r.stats.meanCodesChanged).toBeCloseTo(1.5);
    expect(r.stats.meanCostIncrease).toBeCloseTo(((6 / 2 - 1) + (2.7 / 2 - 1)) / 2, 5);
    expect(Array.from(codes)).toEqual([0, 0, 0, 0, 0, 0, 1, 0]); // input untouched
  });

  it('random tables: every eligible id unique, each choice the cheapest free tuple, no change without collisions', async () => {
    const rand = rng(3);
    for (const [n, K, L] of [[60, 2, 9], [25, 3, 3], [30, 1, 40]] as const) {
      const D = Float32Array.from({ length: n * K * L }, () => rand());
      // nearest codes (small L: many collisions)
      const near = new Int32Array(n * K);
      for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) {
        let b = 0;
        for (let l = 1; l < L; l++) if (D[(i * K + k) * L + l] < D[(i * K + k) * L + b]) b = l;
        near[i * K + k] = b;
      }
      const eligible = Uint8Array.from({ length: n }, (_, i) => (i % 7 === 6 ? 0 : 1));
      const r = await assignUniqueCodes(near, K, L, table(D, K, L), { eligible });
      const keys = new Set<string>();
      const cost = (i: number, c: ArrayLike<number>) => Array.from(c).reduce((s, l, k) => s + D[(i * K + k) * L + l], 0);
      for (let i = 0; i < n; i++) {
        const t = Array.from(r.codes.subarray(i * K, i * K + K));
        if (!eligible[i]) {
          expect(t).toEqual(Array.from(near.subarray(i * K, i * K + K)));
          continue;
        }
        expect(keys.has(t.join())).toBe(false);
        keys.add(t.join());
        expect(cost(i, t)).toBeGreaterThanOrEqual(cost(i, near.subarray(i * K, i * K + K)) - 1e-6);
      }
      // a tuple free at the end was free when any id chose: no moved id could have had a cheaper one
      const all: number[][] = [[]];
      for (let k = 0; k < K; k++) all.splice(0, all.length, ...all.flatMap((p) => Array.from({ length: L }, (_, l) => [...p, l])));
      const free = all.filter((t) => !keys.has(t.join()));
      for (let i = 0; i < n; i++) {
        if (!eligible[i] || near.subarray(i * K, i * K + K).every((c, k) => c === r.codes[i * K + k])) continue;
        const mine = cost(i, r.codes.subarray(i * K, i * K + K));
        for (const t of free) expect(cost(i, t)).toBeGreaterThanOrEqual(mine - 1e-6);
      }
      expect(r.stats.reassigned).toBeGreaterThan(0);
      // a table without collisions comes back unchanged
      const again = await assignUniqueCodes(r.codes, K, L, table(D, K, L), { eligible });
      expect(Array.from(again.codes)).toEqual(Array.from(r.codes));
      expect(again.stats.reassigned).toBe(0);
    }
  });

  it('tuples held from outside are never taken; new ids go around them', async () => {
    // K = 1, L = 4; held: codes 0 and 2. New ids 0 and 1 are both nearest to 0.
    const D = Float32Array.from([0, 1, 2, 3, /**/ 0, 3, 0.5, 1]);
    const r = await assignUniqueCodes(Int32Array.from([0, 0]), 1, 4, table(D, 1, 4), { held: Int32Array.from([0, 2]) });
    expect(Array.from(r.codes)).toEqual([1, 3]);
    expect(r.stats.reassigned).toBe(2);
    // one new id whose nearest tuple is free keeps it
    const s = await assignUniqueCodes(Int32Array.from([1]), 1, 4, table(D, 1, 4), { held: Int32Array.from([0, 2]) });
    expect(Array.from(s.codes)).toEqual([1]);
  });

  it('rejects impossible or malformed input with a clear error', async () => {
    const D = new Float32Array(3 * 1 * 2);
    await expect(assignUniqueCodes(Int32Array.from([0, 0, 0]), 1, 2, table(D, 1, 2))).rejects.toThrow(/no free tuple left/);
    await expect(assignUniqueCodes(Int32Array.from([0, 0, 0]), 2, 2, table(D, 2, 2))).rejects.toThrow(/not a multiple of K/);
    await expect(assignUniqueCodes(Int32Array.from([0, 0]), 1, 2, async () => new Float32Array(1))).rejects.toThrow(/expected 4/);
  });

  it('codewordDistances equals the direct sum of squares', () => {
    const rand = rng(5);
    const K = 2, L = 4, dc = 3, m = 5;
    const a = randomVectors(rand, m * K, dc), cb = randomVectors(rand, K * L, dc);
    const d = codewordDistances(a, cb, K, L, dc);
    for (let i = 0; i < m; i++) for (let k = 0; k < K; k++) for (let l = 0; l < L; l++) {
      let s = 0;
      for (let e = 0; e < dc; e++) s += (a[(i * K + k) * dc + e] - cb[(k * L + l) * dc + e]) ** 2;
      expect(d[(i * K + k) * L + l]).toBeCloseTo(s, 5);
    }
  });
});

describe('trainTokenizer with uniqueCodes', () => {
  it('duplicated vectors get distinct tuples (default), share them with --no-unique-codes; unseen ids keep nearest codes', async () => {
    const dim = 8, n = 120;
    const rand = rng(11);
    const v = randomVectors(rand, n, dim);
    for (let i = 1; i < 20; i++) v.copyWithin(i * dim, 0, dim); // ids 0..19 identical
    const SMALL = { K: 3, L: 16, dc: 16, encHidden: [16, 16], epochs: 3, batchSize: 32, kmeansIters: 3 };
    const exclude = Uint8Array.from({ length: n }, (_, i) => (i >= 110 ? 1 : 0));
    const on = await trainTokenizer(v, dim, SMALL, { exclude });
    const off = await trainTokenizer(v, dim, { ...SMALL, uniqueCodes: false }, { exclude });
    try {
      expect(off.stats.collisions.uniqueFraction).toBeLessThan(1);
      expect(off.stats.assignment).toBeUndefined();
      // same training (same seed), so the same nearest codes
      expect(Array.from(off.codes)).toEqual(Array.from(await on.tokenizer.encode(v)));
      expect(on.stats.nearestCollisions).toEqual(off.stats.collisions);
      const seen = on.codes.subarray(0, 110 * 3);
      expect(collisionStats(seen, 3).uniqueFraction).toBe(1);
      expect(on.stats.assignment!.reassigned).toBeGreaterThanOrEqual(19);
      expect(Array.from(on.codes.subarray(110 * 3))).toEqual(Array.from(off.codes.subarray(110 * 3)));
    } finally {
      on.tokenizer.dispose();
      off.tokenizer.dispose();
    }
    // more ids than tuples: refused before any training, naming the way out
    await expect(trainTokenizer(v, dim, { ...SMALL, K: 1, L: 16 })).rejects.toThrow(/L\^K = 16\^1 = 16; raise L or K, or turn unique codes off/);
  });
});
