import { describe, expect, it } from 'vitest';
import { CodeTrie } from '../lib/ar/trie.js';
import { beamSearch, type StepFn } from '../lib/ar/beam.js';
import { seededRandom } from '../lib/data/split.js';

// A deterministic toy "model": log-softmax of pseudo-random logits that depend on the query and prefix.
function toyStep(L: number, seed: number): StepFn {
  return async (query, prefixes) => {
    const out = new Float32Array(prefixes.length * L);
    prefixes.forEach((p, b) => {
      const r = seededRandom(seed * 1000003 + query[b] * 7919 + p.reduce((h, c) => h * 31 + c + 1, 17));
      const logits = Array.from({ length: L }, () => r() * 6);
      const m = Math.max(...logits);
      const z = Math.log(logits.reduce((s, x) => s + Math.exp(x - m), 0)) + m;
      logits.forEach((x, c) => (out[b * L + c] = x - z));
    });
    return out;
  };
}

describe('constrained beam search', () => {
  const K = 3, L = 8, N = 60;
  const rand = seededRandom(5);
  const codes = new Int32Array(N * K);
  for (let i = 0; i < codes.length; i++) codes[i] = Math.floor(rand() * L);
  const trie = new CodeTrie(codes, K, L);
  const valid = new Set(Array.from({ length: N }, (_, i) => codes.subarray(i * K, i * K + K).join(',')));

  it('never returns an item that does not exist, and returns codes that are valid tuples', async () => {
    const res = await beamSearch(25, trie, toyStep(L, 1), { beam: 20, k: 20 });
    for (const r of res) {
      expect(r.items.length).toBeGreaterThan(0);
      for (const i of r.items) {
        expect(i).toBeGreaterThanOrEqual(0);
        expect(i).toBeLessThan(N);
        expect(valid.has(codes.subarray(i * K, i * K + K).join(','))).toBe(true);
      }
      for (let j = 1; j < r.scores.length; j++) expect(r.scores[j]).toBeLessThanOrEqual(r.scores[j - 1]);
    }
  });

  it('with width 1 equals greedy decoding over the valid codes', async () => {
    const step = toyStep(L, 2);
    const res = await beamSearch(10, trie, step, { beam: 1, k: 1 });
    for (let q = 0; q < 10; q++) {
      const prefix: number[] = [];
      let node = 0;
      for (let t = 0; t < K; t++) {
        const lp = await step(Int32Array.from([q]), [prefix], t);
        let best = -1, bestLp = -Infinity;
        for (const [c, child] of trie.next(node)) if (lp[c] > bestLp) { bestLp = lp[c]; best = c; node = child; }
        prefix.push(best);
      }
      expect(res[q].items[0]).toBe(trie.items(trie.walk(prefix))[0]);
    }
  });

  it('finds the exact best item when the beam is as wide as the tree', async () => {
    const step = toyStep(L, 3);
    const res = await beamSearch(5, trie, step, { beam: 1000, k: 1 });
    for (let q = 0; q < 5; q++) {
      let best = -1, bestScore = -Infinity;
      for (let i = 0; i < N; i++) {
        let s = 0;
        const p: number[] = [];
        for (let t = 0; t < K; t++) {
          s += (await step(Int32Array.from([q]), [p.slice()], t))[codes[i * K + t]];
          p.push(codes[i * K + t]);
        }
        if (s > bestScore + 1e-9) { bestScore = s; best = i; }
      }
      expect(res[q].scores[0]).toBeCloseTo(bestScore, 5);
      expect(codes.subarray(res[q].items[0] * K, res[q].items[0] * K + K).join()).toBe(codes.subarray(best * K, best * K + K).join());
    }
  });

  it('rejects bad codes and bad widths', async () => {
    expect(() => new CodeTrie(Int32Array.from([0, 9]), 2, 8)).toThrow(/outside \[0, 8\)/);
    expect(() => new CodeTrie(Int32Array.from([0, 1, 2]), 2, 8)).toThrow(/multiple of K/);
    await expect(beamSearch(1, trie, toyStep(L, 1), { beam: 0, k: 1 })).rejects.toThrow(/beam width/);
  });
});
