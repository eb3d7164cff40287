import { describe, expect, it } from 'vitest';
import { ItemIndex, resultRow, MAX_K, type Similarity } from '../lib/retrieval/topk.js';
import { toCsr } from '../lib/data/types.js';
import { rng, randomVectors } from './helpers/random.js';

// Independent reference: float64 scores, full sort by (score desc, index asc), then the same
// column count and padding rules as the kernel.
function reference(items: Float32Array, queries: Float32Array, dim: number, k: number, sim: Similarity, excl?: number[][]) {
  const N = items.length / dim;
  const B = queries.length / dim;
  const kout = Math.min(k, N);
  const rows: { ids: number[]; scores: number[] }[] = [];
  const norm = (v: Float32Array, r: number) => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += v[r * dim + d] ** 2;
    return Math.sqrt(s);
  };
  for (let b = 0; b < B; b++) {
    const ex = new Set(excl?.[b] ?? []);
    const all: [number, number][] = [];
    const nq = norm(queries, b);
    for (let j = 0; j < N; j++) {
      if (ex.has(j)) continue;
      let s = 0;
      for (let d = 0; d < dim; d++) s += queries[b * dim + d] * items[j * dim + d];
      if (sim === 'cosine') {
        const ni = norm(items, j);
        s = nq > 0 && ni > 0 ? s / (nq * ni) : 0;
      }
      all.push([s, j]);
    }
    all.sort((a, c) => c[0] - a[0] || a[1] - c[1]);
    const ids: number[] = [];
    const scores: number[] = [];
    for (let i = 0; i < kout; i++) {
      ids.push(i < all.length ? all[i][1] : -1);
      scores.push(i < all.length ? all[i][0] : -Infinity);
    }
    rows.push({ ids, scores });
  }
  return { rows, kout };
}

// Equal up to float32 rounding: scores within tol; ids equal wherever the reference's scores
// around that position are separated by more than tol (near-ties may swap), and as sets overall
// when the boundary is clear.
function expectClose(got: { ids: number[]; scores: number[] }, want: { ids: number[]; scores: number[] }, tol: number) {
  expect(got.ids.length).toBe(want.ids.length);
  for (let i = 0; i < want.ids.length; i++) {
    if (want.ids[i] === -1) {
      expect(got.ids[i]).toBe(-1);
      expect(got.scores[i]).toBe(-Infinity);
      continue;
    }
    expect(Math.abs(got.scores[i] - want.scores[i])).toBeLessThanOrEqual(tol);
    const prevGap = i > 0 ? want.scores[i - 1] - want.scores[i] : Infinity;
    const nextGap = i + 1 < want.ids.length && want.ids[i + 1] !== -1 ? want.scores[i] - want.scores[i + 1] : Infinity;
    if ((prevGap > tol || prevGap === 0) && (nextGap > tol || nextGap === 0)) {
      // Exact ties (gap 0) are ordered by index in both.
      expect(got.ids[i]).toBe(want.ids[i]);
    }
  }
}

describe('ItemIndex (native top-K)', () => {
  it('hand-worked: score order, ties to the smaller index, exclusions, k > N padding', async () => {
    // q = (1, 0). Items: 0:(1,0) 1:(2,0) 2:(1,0) 3:(0,1) 4:(2,0) 5:(-1,0)
    const items = new Float32Array([1, 0, 2, 0, 1, 0, 0, 1, 2, 0, -1, 0]);
    const q = new Float32Array([1, 0]);
    const dot = await ItemIndex.create(items, { dim: 2, similarity: 'dot' });
    expect(resultRow(await dot.search(q, 3, undefined, { backend: 'cpu' }), 0)).toEqual({ ids: [1, 4, 0], scores: [2, 2, 1] });
    const cos = await ItemIndex.create(items, { dim: 2 });
    expect(cos.similarity).toBe('cosine');
    let r = await cos.search(q, 6);
    expect(resultRow(r, 0)).toEqual({ ids: [0, 1, 2, 4, 3, 5], scores: [1, 1, 1, 1, 0, -1] });
    // k > N: N columns; 3 of 6 excluded (a duplicate in the list is fine): padded with -1 / -Infinity.
    r = await cos.search(q, 50, toCsr([[1, 5, 1]]));
    expect(r.k).toBe(6);
    expect(resultRow(r, 0)).toEqual({ ids: [0, 2, 4, 3, -1, -1], scores: [1, 1, 1, 0, -Infinity, -Infinity] });
  });

  for (const similarity of ['cosine', 'dot'] as const) {
    it(`equals a float64 TypeScript reference on random data with ties (${similarity})`, async () => {
      const rand = rng(similarity === 'cosine' ? 3 : 4);
      for (const [dim, N, B, k] of [
        [3, 50, 1, 7],
        [13, 700, 9, 20], // d not a multiple of 8
        [64, 2000, 33, 100],
        [5, 40, 4, 60], // k > N
      ]) {
        const items = randomVectors(rand, N, dim);
        items.copyWithin(Math.floor(N / 2) * dim, 0, Math.floor(N / 4) * dim); // exact duplicates: real ties
        const queries = randomVectors(rand, B, dim);
        const excl = Array.from({ length: B }, () => Array.from({ length: Math.floor(rand() * 6) }, () => Math.floor(rand() * N)));
        const ix = await ItemIndex.create(items, { dim, similarity });
        expect(ix.size).toBe(N);
        expect(ix.dim).toBe(dim);
        const got = await ix.search(queries, k, toCsr(excl));
        const want = reference(items, queries, dim, k, similarity, excl);
        expect(got.k).toBe(want.kout);
        expect(got.ids.length).toBe(B * want.kout);
        for (let b = 0; b < B; b++) expectClose(resultRow(got, b), want.rows[b], similarity === 'cosine' ? 2e-6 : 2e-5);
        ix.dispose();
      }
    });
  }

  it('B = 0 and B = 1; a query gives the same row alone as in a batch', async () => {
    const rand = rng(8);
    const dim = 10;
    const ix = await ItemIndex.create(randomVectors(rand, 3000, dim), { dim });
    const empty = await ix.search(new Float32Array(0), 5);
    expect(empty.ids.length).toBe(0);
    expect(empty.k).toBe(5);
    const queries = randomVectors(rand, 20, dim);
    const batch = await ix.search(queries, 25);
    for (const b of [0, 7, 19]) {
      const one = await ix.search(queries.subarray(b * dim, (b + 1) * dim), 25); // byteOffset honoured
      expect(resultRow(one, 0)).toEqual(resultRow(batch, b));
    }
  });

  it('add() appends items without rebuilding: same results as one index of all items', async () => {
    const rand = rng(9);
    const dim = 12;
    const all = randomVectors(rand, 5000, dim);
    const whole = await ItemIndex.create(all, { dim });
    const parts = new ItemIndex({ dim });
    // Not awaited: searches wait for earlier adds.
    void parts.add(all.subarray(0, 7 * dim));
    void parts.add(all.subarray(7 * dim, 2500 * dim));
    void parts.add(all.subarray(2500 * dim));
    const queries = randomVectors(rand, 6, dim);
    const a = await whole.search(queries, 40);
    const b = await parts.search(queries, 40);
    expect(parts.size).toBe(5000);
    expect(Array.from(b.ids)).toEqual(Array.from(a.ids));
    expect(Array.from(b.scores)).toEqual(Array.from(a.scores));
    // A new item equal to the query (cosine 1) comes first, with the next id.
    await parts.add(queries.subarray(0, dim));
    const c = await parts.search(queries.subarray(0, dim), 3);
    expect(c.ids[0]).toBe(5000);
    expect(c.scores[0]).toBeCloseTo(1, 6);
  });

  it('an empty index returns zero columns; k up to MAX_K works', async () => {
    const ix = new ItemIndex({ dim: 4 });
    const r = await ix.search(new Float32Array(8), 10);
    expect(r.k).toBe(0);
    expect(r.ids.length).toBe(0);
    const rand = rng(10);
    await ix.add(randomVectors(rand, 1500, 4));
    const big = await ix.search(randomVectors(rand, 2, 4), MAX_K);
    expect(big.k).toBe(MAX_K);
    for (let b = 0; b < 2; b++) {
      const row = resultRow(big, b);
      expect(new Set(row.ids).size).toBe(MAX_K);
      for (let i = 1; i < row.scores.length; i++) expect(row.scores[i]).toBeLessThanOrEqual(row.scores[i - 1]);
    }
  });

  it('rejects bad input with clear errors, without crashing', async () => {
    const ix = await ItemIndex.create(new Float32Array([1, 0, 0, 1]), { dim: 2 });
    const q = new Float32Array([1, 0]);
    await expect(ix.search(new Float32Array([NaN, 0]), 1)).rejects.toMatchObject({ code: 'ERR_TOKENREC_NOT_FINITE' });
    await expect(ix.add(new Float32Array([Infinity, 0]))).rejects.toMatchObject({ code: 'ERR_TOKENREC_NOT_FINITE' });
    expect(ix.size).toBe(2); // the rejected add changed nothing
    await expect(ix.search(new Float32Array(3), 1)).rejects.toThrow(/multiple of dim/);
    await expect(ix.add(new Float32Array(3))).rejects.toThrow(/multiple of dim/);
    await expect(ix.search(q, 0)).rejects.toThrow(/k must be an integer in \[1, 1024\]/);
    await expect(ix.search(q, 1.5)).rejects.toThrow(/k must be an integer/);
    await expect(ix.search(q, MAX_K + 1)).rejects.toThrow(/k must be/);
    await expect(ix.search([1, 0] as unknown as Float32Array, 1)).rejects.toThrow(/queries must be a Float32Array/);
    await expect(ix.search(q, 1, toCsr([[2]]))).rejects.toMatchObject({ code: 'ERR_TOKENREC_OUT_OF_RANGE' });
    await expect(ix.search(q, 1, toCsr([[0], [1]]))).rejects.toThrow(/exclude has 2 rows but there are 1 queries/);
    await expect(ix.search(q, 1, { ptr: new Int32Array([0, 5]), idx: new Int32Array(1) })).rejects.toThrow(/excludeIdx.length/);
    await expect(ix.search(q, 1, undefined, { backend: 'gpu' as 'cpu' })).rejects.toThrow(/backend must be/);
    expect(() => new ItemIndex({ dim: 0 })).toThrow(/dim must be an integer >= 1/);
    expect(() => new ItemIndex({ dim: 2, similarity: 'l2' as Similarity })).toThrow(/similarity must be/);
  });

  it('use after dispose is an error; a search in flight still completes', async () => {
    const rand = rng(11);
    const ix = await ItemIndex.create(randomVectors(rand, 20000, 32), { dim: 32 });
    const inflight = ix.search(randomVectors(rand, 64, 32), 10);
    ix.dispose();
    expect(ix.disposed).toBe(true);
    const r = await inflight;
    expect(r.ids.length).toBe(640);
    await expect(ix.search(new Float32Array(32), 1)).rejects.toThrow(/disposed/);
    await expect(ix.add(new Float32Array(32))).rejects.toThrow(/disposed/);
    expect(() => ix.size).toThrow(/disposed/);
    ix.dispose(); // twice is fine
  });

  it('keeps the event loop ticking during a long search', async () => {
    const rand = rng(12);
    const dim = 64;
    const ix = await ItemIndex.create(randomVectors(rand, 100000, dim), { dim });
    const queries = randomVectors(rand, 256, dim);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = performance.now();
    await ix.search(queries, 20);
    const ms = performance.now() - t0;
    clearInterval(timer);
    expect(ms).toBeGreaterThan(20);
    expect(ticks).toBeGreaterThan(Math.min(3, ms / 20));
  });
});
