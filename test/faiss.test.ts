import { describe, expect, it, vi } from 'vitest';
import { FaissIndex, faissAvailable } from '../lib/retrieval/faiss.js';
import { ItemIndex, resultRow, type TopKResult } from '../lib/retrieval/topk.js';
import { toCsr } from '../lib/data/types.js';
import { rng, randomVectors } from './helpers/random.js';

const avail = faissAvailable();
if (!avail.ok) console.warn(`faiss tests skipped: faiss backend is off: ${avail.reason}`);

// Same top-k up to ties: scores within tol position by position; ids equal wherever the scores
// around that position are separated by more than tol. The last position may differ (a tie with
// an item just past the cut, which either backend may keep), its score may not.
function expectSameUpToTies(a: TopKResult, b: TopKResult, B: number, tol: number) {
  expect(a.k).toBe(b.k);
  for (let q = 0; q < B; q++) {
    const x = resultRow(a, q);
    const y = resultRow(b, q);
    for (let i = 0; i < a.k; i++) {
      if (x.ids[i] === -1 || y.ids[i] === -1) {
        expect(x.ids[i]).toBe(y.ids[i]);
        continue;
      }
      expect(Math.abs(x.scores[i] - y.scores[i])).toBeLessThanOrEqual(tol);
      const near = (j: number) => j >= 0 && j < a.k && Math.abs(x.scores[j] - x.scores[i]) <= tol;
      if (!near(i - 1) && !near(i + 1) && i < a.k - 1) expect(y.ids[i]).toBe(x.ids[i]);
    }
  }
}

describe.skipIf(!avail.ok)('FaissIndex (faiss-node backend)', () => {
  it('reports itself available', () => {
    expect(avail).toEqual({ ok: true });
  });

  it('cosine: same results as the native kernel up to ties, with exclusions and k > N', async () => {
    const rand = rng(21);
    for (const [dim, N, B, k] of [
      [64, 3000, 16, 20],
      [13, 500, 5, 50],
      [4, 30, 3, 100],
    ]) {
      const items = randomVectors(rand, N, dim);
      items.copyWithin(0, dim * Math.floor(N / 2), dim * (Math.floor(N / 2) + 10)); // ties
      const queries = randomVectors(rand, B, dim);
      const exclude = toCsr(Array.from({ length: B }, () => Array.from({ length: 5 }, () => Math.floor(rand() * N))));
      const native = await ItemIndex.create(items, { dim, similarity: 'cosine' });
      const faiss = await FaissIndex.create(items, { dim, metric: 'cosine' });
      expect(faiss.size).toBe(N);
      expectSameUpToTies(await native.search(queries, k, exclude, { backend: 'cpu' }), await faiss.search(queries, k, exclude), B, 1e-5);
      expectSameUpToTies(await native.search(queries, k), await faiss.search(queries, k), B, 1e-5);
      native.dispose();
      faiss.dispose();
    }
  });

  it("'ip' equals the native dot-product kernel up to ties", async () => {
    const rand = rng(22);
    const dim = 32, N = 2000, B = 8;
    const items = randomVectors(rand, N, dim);
    const queries = randomVectors(rand, B, dim);
    const native = await ItemIndex.create(items, { dim, similarity: 'dot' });
    const faiss = await FaissIndex.create(items, { dim, metric: 'ip' });
    expectSameUpToTies(await native.search(queries, 30, undefined, { backend: 'cpu' }), await faiss.search(queries, 30), B, 1e-4);
  });

  it("'l2': nearest items by squared distance, as a TypeScript reference", async () => {
    const rand = rng(23);
    const dim = 6, N = 300, B = 4, k = 5;
    const items = randomVectors(rand, N, dim);
    const queries = randomVectors(rand, B, dim);
    const faiss = await FaissIndex.create(items, { dim, metric: 'l2' });
    const r = await faiss.search(queries, k);
    for (let b = 0; b < B; b++) {
      const d2 = Array.from({ length: N }, (_, j) => {
        let s = 0;
        for (let d = 0; d < dim; d++) s += (queries[b * dim + d] - items[j * dim + d]) ** 2;
        return [s, j] as const;
      }).sort((x, y) => x[0] - y[0]);
      const row = resultRow(r, b);
      expect(row.ids).toEqual(d2.slice(0, k).map((e) => e[1]));
      for (let i = 0; i < k; i++) expect(row.scores[i]).toBeCloseTo(d2[i][0], 4);
    }
  });

  it('rejects bad input', async () => {
    const faiss = await FaissIndex.create(new Float32Array([1, 0, 0, 1]), { dim: 2 });
    await expect(faiss.search(new Float32Array(3), 1)).rejects.toThrow(/multiple of dim/);
    await expect(faiss.search(new Float32Array(2), 0)).rejects.toThrow(/k must be/);
    await expect(faiss.add(new Float32Array([NaN, 0]))).rejects.toThrow(/non-finite/);
    await expect(faiss.search(new Float32Array([1, 0]), 1, toCsr([[7]]))).rejects.toThrow(/outside/);
    expect(() => new FaissIndex({ dim: 2, metric: 'hamming' as 'l2' })).toThrow(/metric must be/);
    faiss.dispose();
    await expect(faiss.search(new Float32Array(2), 1)).rejects.toThrow(/disposed/);
  });
});

describe('faissAvailable', () => {
  it('answers without throwing, with a reason when off', () => {
    const a = faissAvailable();
    expect(typeof a.ok).toBe('boolean');
    if (!a.ok) expect(a.reason).toMatch(/faiss/);
  });

  it('when off, says why and FaissIndex throws "faiss backend is off: <reason>"', async () => {
    process.env.TOKENREC_FAISS = 'off';
    try {
      vi.resetModules();
      const fresh = await import('../lib/retrieval/faiss.js');
      expect(fresh.faissAvailable()).toEqual({ ok: false, reason: 'disabled by TOKENREC_FAISS=off' });
      expect(() => new fresh.FaissIndex({ dim: 4 })).toThrow(/^faiss backend is off: disabled by TOKENREC_FAISS=off$/);
    } finally {
      delete process.env.TOKENREC_FAISS;
      vi.resetModules();
    }
  });
});
