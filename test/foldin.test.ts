// FoldInContext (lib/cf/foldin.ts): the graph propagated once, then fold-in per request. It must
// give exactly foldInUsers' vectors (the one-shot path) and reject bad input with clear errors.
import { describe, expect, it } from 'vitest';
import { trainingCsr } from '../lib/cf/config.js';
import { FoldInContext, foldInUsers, type FoldInModel } from '../lib/cf/foldin.js';
import { createCfFoldInContextNative } from '../lib/cf/native.js';
import { seededRandom, splitLeaveOneOut } from '../lib/data/split.js';
import { syntheticDataset } from '../lib/data/synthetic.js';

const split = splitLeaveOneOut(syntheticDataset({ users: 200, items: 120, groups: 5, minPerUser: 6, maxPerUser: 15, seed: 3 }), { unseenFraction: 0.1 });
const csr = trainingCsr(split);

/** A model with seeded random ego vectors: fold-in only reads them, no training needed. */
function model(dim: number, layers: number, seed = 1): FoldInModel {
  const rnd = seededRandom(seed);
  const vec = (n: number) => Float32Array.from({ length: n }, () => (rnd() - 0.5) * 0.2);
  return { numUsers: split.numUsers, numItems: split.numItems, dim, layers, userEgo: vec(split.numUsers * dim), itemEgo: vec(split.numItems * dim), trainPtr: csr.ptr, trainIdx: csr.idx };
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
const histories = [[3], [5, 9, 9, 17, 40], Array.from(split.train[split.unseenUsers[0]]), Array.from({ length: 60 }, (_, k) => (k * 7) % 120)];

describe('FoldInContext', () => {
  it('gives exactly the one-shot foldInUsers vectors (LightGCN and MF, both scoring strategies)', async () => {
    for (const [dim, layers] of [[16, 3], [12, 0], [13, 2]]) {
      const m = model(dim, layers);
      const ctx = await FoldInContext.create(m);
      // negatives 1 with short histories scores pair by pair; 64 scores the whole catalogue.
      for (const config of [{ steps: 25 }, { steps: 25, negatives: 1, seed: 4 }]) {
        const one = await foldInUsers(m, histories, config);
        const got = await ctx.foldIn(histories, config);
        expect(bits(got.final)).toBe(bits(one.final));
        expect(bits(got.ego)).toBe(bits(one.ego));
        // Row b is seeded by (seed, b): a single history at row 0 is its own one-shot call.
        const single = await ctx.foldIn([histories[1]], config);
        expect(bits(single.final)).toBe(bits((await foldInUsers(m, [histories[1]], config)).final));
      }
      // Overlapping calls on one context (it is immutable) give the same vectors.
      const [a, b] = await Promise.all([ctx.foldIn(histories, { steps: 10 }), ctx.foldIn(histories, { steps: 10 })]);
      expect(bits(a.final)).toBe(bits(b.final));
      expect(a.final.every(Number.isFinite)).toBe(true);
      ctx.dispose();
    }
  });

  it('rejects bad input with errors naming it, and any use after dispose', async () => {
    const m = model(8, 2);
    const ctx = await FoldInContext.create(m);
    await expect(ctx.foldIn([[1, 120]])).rejects.toThrow(/history 0: item 120 is not an item of the model \(0\.\.119\)/);
    await expect(ctx.foldIn([[1], [-1]])).rejects.toThrow(/history 1: item -1/);
    await expect(ctx.foldIn([[1.5]])).rejects.toThrow(/item 1.5/);
    await expect(ctx.foldIn([[2], []])).rejects.toThrow(/history 1: is empty/);
    await expect(ctx.foldIn([[2]], { steps: -1 })).rejects.toThrow(/steps/);
    await expect(ctx.foldIn([[2]], { lr: Number.NaN })).rejects.toThrow(/lr/);
    expect(ctx.disposed).toBe(false);
    ctx.dispose();
    ctx.dispose(); // idempotent
    expect(ctx.disposed).toBe(true);
    await expect(ctx.foldIn([[2]])).rejects.toMatchObject({ code: 'ERR_TOKENREC_DISPOSED' });

    const bad = model(8, 2);
    bad.itemEgo[5] = Number.NaN;
    await expect(FoldInContext.create(bad)).rejects.toThrow(/not finite/);
    await expect(FoldInContext.create({ ...m, itemEgo: m.itemEgo.subarray(1) })).rejects.toThrow(/itemEgo.length/);
    await expect(FoldInContext.create({ ...m, trainIdx: Int32Array.from(m.trainIdx, (i) => (i === 7 ? 500 : i)) })).rejects.toThrow(/trainIdx\[\d+\] = 500/);
    // foldInUsers keeps its behaviour: an empty history gives zero vectors.
    const z = await foldInUsers(m, [[]], { steps: 5 });
    expect(Array.from(z.final).every((x) => x === 0)).toBe(true);
  });

  it('native context: use after dispose is a JS error, not a crash', async () => {
    const m = model(8, 1);
    const ego = new Float32Array((m.numUsers + m.numItems) * m.dim);
    ego.set(m.userEgo);
    ego.set(m.itemEgo, m.numUsers * m.dim);
    const n = await createCfFoldInContextNative({ numUsers: m.numUsers, numItems: m.numItems, trainPtr: m.trainPtr, trainIdx: m.trainIdx, ego, dim: 8, layers: 1 });
    expect([n.numUsers, n.numItems, n.dim, n.layers]).toEqual([m.numUsers, m.numItems, 8, 1]);
    const opts = { steps: 5, negatives: 2, lr: 0.05, lambda: 1e-4, seed: 0 };
    const pending = n.foldIn(Int32Array.from([0, 2]), Int32Array.from([1, 2]), opts);
    n.dispose(); // the running call keeps its data alive
    expect((await pending).final.length).toBe(8);
    expect(() => n.foldIn(Int32Array.from([0, 1]), Int32Array.from([1]), opts)).toThrow(expect.objectContaining({ code: 'ERR_TOKENREC_DISPOSED' }));
    expect(() => n.numItems).toThrow(/disposed/);
    expect(n.disposed).toBe(true);
    // An out-of-range id that bypasses the TypeScript checks is still a clean rejection.
    const n2 = await createCfFoldInContextNative({ numUsers: m.numUsers, numItems: m.numItems, trainPtr: m.trainPtr, trainIdx: m.trainIdx, ego, dim: 8, layers: 1 });
    await expect(n2.foldIn(Int32Array.from([0, 1]), Int32Array.from([999]), opts)).rejects.toThrow(/historyIdx\[0\] = 999/);
    expect(() => n2.foldIn(Int32Array.from([0, 2]), Int32Array.from([1]), opts)).toThrow(/historyPtr\[last\]/);
    n2.dispose();
  });
});
