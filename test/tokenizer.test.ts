import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vqNearest, vqNearestNaive, kmeans } from '../lib/tokenizer/vq.js';
import { codebookStats, collisionStats, disambiguate } from '../lib/tokenizer/stats.js';
import { resolveTokenizerConfig } from '../lib/tokenizer/config.js';
import { Tokenizer } from '../lib/tokenizer/model.js';
import { trainTokenizer, type TokenizerStats } from '../lib/tokenizer/train.js';
import { clusteredVectors } from '../lib/tokenizer/synthetic.js';
import { runTokenizerStage, TOKENIZER_FILES } from '../lib/tokenizer/stage.js';
import { runTokenize } from '../lib/cli/tokenize.js';
import { f32, readSafetensors, writeSafetensors } from '../lib/io/safetensors.js';
import { openManifest, readManifest, verifyStage } from '../lib/io/manifest.js';
import { saveCfStage } from '../lib/cf/store.js';
import { resolveCfConfig } from '../lib/cf/config.js';
import { rng, randomVectors } from './helpers/random.js';

// A small tokenizer that trains in well under a second.
const SMALL = { K: 3, L: 16, dc: 16, encHidden: [16, 16], epochs: 4, batchSize: 64, kmeansIters: 3, holdout: 0.1 };

describe('vqNearest (native batched nearest-codeword search)', () => {
  it('equals the naive loop (ties allowed) and returns squared distances', async () => {
    const rand = rng(7);
    for (const dim of [1, 5, 64]) {
      const B = 200, K = 3, L = 40;
      const a = randomVectors(rand, B * K, dim);
      const cb = randomVectors(rand, K * L, dim);
      cb.copyWithin((1 * L + 30) * dim, (1 * L + 2) * dim, (1 * L + 3) * dim); // a duplicated codeword: exact tie
      const got = await vqNearest({ a, codebooks: cb, K, dim, backend: 'cpu' });
      const ref = vqNearestNaive(a, cb, K, dim);
      for (let o = 0; o < B * K; o++) {
        const k = o % K;
        const d = (l: number) => {
          let s = 0;
          for (let e = 0; e < dim; e++) s += (a[o * dim + e] - cb[(k * L + l) * dim + e]) ** 2;
          return s;
        };
        // the chosen codeword is a nearest one (up to fp32 rounding of the GEMM expansion)
        expect(d(got.idx[o])).toBeLessThanOrEqual(ref.dist[o] + 1e-4 * (1 + ref.dist[o]));
        expect(got.dist[o]).toBeCloseTo(ref.dist[o], 3);
      }
    }
  });

  it('rejects bad arguments with clear errors', async () => {
    const a = new Float32Array(6), cb = new Float32Array(12);
    await expect(vqNearest({ a, codebooks: cb, K: 4, dim: 2 })).rejects.toThrow(/a.length \(6\) is not a multiple of K \* dim/);
    await expect(vqNearest({ a: new Float32Array([NaN, 0]), codebooks: cb, K: 1, dim: 2 })).rejects.toMatchObject({ code: 'ERR_TOKENREC_NOT_FINITE' });
    await expect(vqNearest({ a: [0, 1] as unknown as Float32Array, codebooks: cb, K: 1, dim: 2 })).rejects.toThrow(/a must be a Float32Array/);
  });

  it('k-means recovers well separated clusters', async () => {
    const rand = rng(3);
    const centres = [[10, 0], [0, 10], [-10, -10]];
    const data = new Float32Array(300 * 2);
    for (let i = 0; i < 300; i++) for (let e = 0; e < 2; e++) data[i * 2 + e] = centres[i % 3][e] + 0.1 * (rand() - 0.5);
    const { centroids, mse } = await kmeans(data, 2, 3, { iters: 10, seed: 1 });
    expect(mse).toBeLessThan(0.01);
    const found = [0, 1, 2].map((l) => [centroids[2 * l], centroids[2 * l + 1]].map(Math.round).join(',')).sort();
    expect(found).toEqual(['-10,-10', '0,10', '10,0']);
  });
});

describe('codebook and collision statistics', () => {
  it('hand-worked case', () => {
    // 5 ids, K = 2, L = 4: ids 0, 2 and 4 share (1, 2)
    const codes = new Int32Array([1, 2, 0, 3, 1, 2, 3, 3, 1, 2]);
    const cs = codebookStats(codes, 2, 4);
    expect(cs[0].used).toBe(3);
    expect(cs[0].utilisation).toBe(0.75);
    expect(cs[1].used).toBe(2);
    // codebook 1: p = (3/5, 2/5)
    expect(cs[1].perplexity).toBeCloseTo(Math.exp(-(0.6 * Math.log(0.6) + 0.4 * Math.log(0.4))), 10);
    expect(collisionStats(codes, 2)).toEqual({ ids: 5, distinctTuples: 3, collisionGroups: 1, collidingIds: 3, uniqueFraction: 0.4, maxGroupSize: 3 });
    const d = disambiguate(codes, 2);
    expect(Array.from(d)).toEqual([1, 2, 0, 0, 3, 0, 1, 2, 1, 3, 3, 0, 1, 2, 2]);
    expect(collisionStats(d, 3).uniqueFraction).toBe(1);
  });
});

describe('MQ-Tokenizer training', () => {
  const dim = 8;
  const vectors = clusteredVectors({ n: 400, dim, clusters: 12, seed: 5 });

  it('trains the encoders, never writes the input, and gives statistics', async () => {
    const copy = vectors.slice();
    // The paper's loss (no decorrelation term): on 8-D toy data the extra term slows the early
    // reconstruction that this test measures.
    const cfg = { ...SMALL, epochs: 12, lr: 3e-3, decorrelation: 0 };
    const fresh = new Tokenizer(resolveTokenizerConfig(cfg), dim); // same seed: the initial weights
    const before = fresh.tensors();
    fresh.dispose();
    const r = await trainTokenizer(vectors, dim, cfg);
    try {
      expect(vectors).toEqual(copy);
      const after = r.tokenizer.tensors();
      for (let k = 0; k < 3; k++) {
        for (const l of [0, 1, 2]) {
          const w0 = before[`encoders.${k}.${l}.weight`].data, w1 = after[`encoders.${k}.${l}.weight`].data;
          let changed = 0;
          for (let i = 0; i < w0.length; i++) changed += w0[i] !== w1[i] ? 1 : 0;
          expect(changed / w0.length).toBeGreaterThan(0.5);
        }
      }
      expect(r.codes.length).toBe(400 * 3);
      expect(r.codeWidth).toBe(3);
      expect(r.heldOut.length).toBe(40);
      expect(r.history).toHaveLength(12);
      expect(r.history[11].recon).toBeLessThan(0.7 * r.history[0].recon);
      const s = r.stats;
      expect(s.codebooks).toHaveLength(3);
      for (const c of s.codebooks) {
        expect(c.utilisation).toBeGreaterThan(0);
        expect(c.perplexity).toBeGreaterThanOrEqual(1);
        expect(c.perplexity).toBeLessThanOrEqual(16);
      }
      expect(s.collisions.ids).toBe(400);
      expect(s.reconHeldOut?.ids).toBe(40);
      expect(s.reconTrain.relative).toBeLessThan(1);
      // the statistics describe the returned codes
      expect(collisionStats(r.codes, 3)).toEqual(s.collisions);
    } finally {
      r.tokenizer.dispose();
    }
  });

  it('reports the decorrelation term when it is on, and 0 when it is off', async () => {
    const on = await trainTokenizer(vectors, dim, { ...SMALL, epochs: 2, decorrelation: 3 });
    const off = await trainTokenizer(vectors, dim, { ...SMALL, epochs: 2, decorrelation: 0 });
    try {
      expect(on.history[1].decorrelation).toBeGreaterThan(0);
      expect(on.history[1].decorrelation).toBeLessThanOrEqual(3 * 3); // 3 pairs, each term in [0, 1]
      expect(off.history[1].decorrelation).toBe(0);
      expect(() => resolveTokenizerConfig({ decorrelation: -1 })).toThrow(/decorrelation/);
      expect(() => resolveTokenizerConfig({ decorrelation: Number.NaN })).toThrow(/decorrelation/);
    } finally {
      on.tokenizer.dispose();
      off.tokenizer.dispose();
    }
  });

  it('same seed, same codes; another seed, other codes', async () => {
    const a = await trainTokenizer(vectors, dim, { ...SMALL, epochs: 2 });
    const b = await trainTokenizer(vectors, dim, { ...SMALL, epochs: 2 });
    const c = await trainTokenizer(vectors, dim, { ...SMALL, epochs: 2, seed: 2 });
    expect(Array.from(a.codes)).toEqual(Array.from(b.codes));
    expect(Array.from(a.codes)).not.toEqual(Array.from(c.codes));
    for (const t of [a, b, c]) t.tokenizer.dispose();
  });

  it('encodes new vectors with a pure, batch-independent function; survives save/load', async () => {
    const r = await trainTokenizer(vectors, dim, { ...SMALL, epochs: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'tok-'));
    try {
      const fresh = clusteredVectors({ n: 50, dim, clusters: 12, seed: 99 });
      const copy = fresh.slice();
      const all = await r.tokenizer.encode(fresh);
      expect(fresh).toEqual(copy);
      expect(Array.from(await r.tokenizer.encode(fresh))).toEqual(Array.from(all));
      for (const i of [0, 17, 49]) {
        const one = await r.tokenizer.encode(fresh.subarray(i * dim, (i + 1) * dim));
        expect(Array.from(one)).toEqual(Array.from(all.subarray(i * 3, i * 3 + 3)));
      }
      // codes of the training vectors equal what training returned, except for the ids the
      // collision-free assignment moved to a free tuple
      const near = await r.tokenizer.encode(vectors);
      let moved = 0;
      for (let i = 0; i < near.length / 3; i++) if ([0, 1, 2].some((k) => near[i * 3 + k] !== r.codes[i * 3 + k])) moved++;
      expect(moved).toBe(r.stats.assignment!.reassigned);
      expect(collisionStats(near, 3)).toEqual(r.stats.nearestCollisions);
      const path = join(dir, 't.safetensors');
      r.tokenizer.save(path);
      const loaded = Tokenizer.load(path);
      expect(Array.from(await loaded.encode(fresh))).toEqual(Array.from(all));
      loaded.dispose();
      await expect(loaded.encode(fresh)).rejects.toThrow(/after dispose/);
      await expect(r.tokenizer.encode(new Float32Array(dim + 1))).rejects.toThrow(/not a multiple of the dimension/);
      await expect(r.tokenizer.encode(new Float32Array(dim).fill(NaN))).rejects.toThrow(/not finite/);
    } finally {
      r.tokenizer.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('disambiguation gives every id a unique tuple', async () => {
    // tiny codebooks force collisions
    const r = await trainTokenizer(vectors, dim, { ...SMALL, L: 2, K: 2, epochs: 1, uniqueCodes: false, disambiguate: true });
    expect(r.codeWidth).toBe(3);
    expect(r.stats.collisions.uniqueFraction).toBeLessThan(1);
    expect(collisionStats(r.codes, 3).uniqueFraction).toBe(1);
    expect(r.stats.extraCodeRange).toBe(r.stats.collisions.maxGroupSize);
    r.tokenizer.dispose();
  });

  it('validates its configuration and stops on abort', async () => {
    expect(() => resolveTokenizerConfig({ maskRate: 1 })).toThrow(/maskRate must be a number in \[0, 1\)/);
    expect(() => resolveTokenizerConfig({ K: 0 })).toThrow(/K must be an integer/);
    expect(resolveTokenizerConfig({ encHidden: [32, 48] }).decHidden).toEqual([48, 32]);
    await expect(trainTokenizer(vectors.subarray(0, dim), dim, SMALL)).rejects.toThrow(/at least 2/);
    const ac = new AbortController();
    const p = trainTokenizer(vectors, dim, { ...SMALL, epochs: 50 }, { signal: ac.signal, onProgress: (e) => e.phase === 'epoch' && ac.abort() });
    await expect(p).rejects.toThrow(/abort/i);
  });
});

describe('tokenizer stage and the tokenize command', () => {
  it('runTokenizerStage reads the CF vectors of a model directory and records the stage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokstage-'));
    try {
      const U = 120, I = 200, D = 8;
      const manifest = openManifest(dir, { name: 'test', fingerprint: 'f'.repeat(64), users: U, items: I, interactions: 0 });
      const userVectors = clusteredVectors({ n: U, dim: D, clusters: 6, seed: 1 });
      const itemVectors = clusteredVectors({ n: I, dim: D, clusters: 6, seed: 2 });
      const userSource = new Int32Array(U);
      userSource.fill(1, U - 10); // 10 users kept unseen by CF: never trained on
      saveCfStage(dir, manifest, {
        config: resolveCfConfig({ dim: D }),
        vectors: { numUsers: U, numItems: I, dim: D, userVectors, itemVectors, userEgo: userVectors, itemEgo: itemVectors, userSource },
        trainPtr: new Int32Array(U + 1),
        trainIdx: new Int32Array(0),
        metrics: {},
      });
      const events: string[] = [];
      const r = await runTokenizerStage(dir, { ...SMALL, epochs: 2 }, { onProgress: (e) => e.phase === 'epoch' && events.push(`${e.entity}${e.epoch}`) });
      expect(r.upToDate).toBe(false);
      expect(events).toEqual(['user1', 'user2', 'item1', 'item2']);
      const m = readManifest(dir)!;
      verifyStage(dir, m, 'tokenizer');
      const { tensors } = readSafetensors(join(dir, TOKENIZER_FILES.codes));
      expect(tensors.user_codes.shape).toEqual([U, 3]);
      expect(tensors.item_codes.shape).toEqual([I, 3]);
      const metrics = m.stages.tokenizer.metrics as Record<string, { reconExcluded?: { ids: number }; collisions: { ids: number } }>;
      expect(metrics.user.reconExcluded?.ids).toBe(10);
      expect(metrics.item.collisions.ids).toBe(I);
      // the stored weights encode the stored codes (up to the ids moved to a free tuple), and
      // the stored codes name every item uniquely
      const tok = Tokenizer.load(join(dir, TOKENIZER_FILES.item));
      const near = await tok.encode(itemVectors);
      expect(collisionStats(near, 3)).toEqual((m.stages.tokenizer.metrics as Record<string, TokenizerStats>).item.nearestCollisions);
      expect(collisionStats(tensors.item_codes.data as Int32Array, 3).uniqueFraction).toBe(1);
      const tuple = (c: ArrayLike<number>, i: number) => `${c[3 * i]},${c[3 * i + 1]},${c[3 * i + 2]}`;
      const count = new Map<string, number>();
      for (let i = 0; i < I; i++) count.set(tuple(near, i), (count.get(tuple(near, i)) ?? 0) + 1);
      for (let i = 0; i < I; i++) if (count.get(tuple(near, i)) === 1) expect(tuple(tensors.item_codes.data, i)).toBe(tuple(near, i));
      tok.dispose();
      expect((await runTokenizerStage(dir, { ...SMALL, epochs: 2 })).upToDate).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runTokenize trains on any safetensors file of vectors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tokcli-'));
    try {
      const file = join(dir, 'v.safetensors');
      writeSafetensors(file, { emb: f32([150, 8], clusteredVectors({ n: 150, dim: 8, seed: 3 })), ids: { dtype: 'I32', shape: [2], data: new Int32Array(2) } });
      const r = await runTokenize(file, { out: join(dir, 'out'), ...SMALL, epochs: 1 });
      expect(Object.keys(r.metrics)).toEqual(['emb']);
      expect(existsSync(join(dir, 'out', 'tokenizer_emb.safetensors'))).toBe(true);
      const { tensors } = readSafetensors(join(dir, 'out', 'tokenizer_codes.safetensors'));
      expect(tensors.emb_codes.shape).toEqual([150, 3]);
      verifyStage(join(dir, 'out'), readManifest(join(dir, 'out'))!, 'tokenizer');
      writeFileSync(join(dir, 'bad.safetensors'), Buffer.alloc(4));
      await expect(runTokenize(join(dir, 'bad.safetensors'), { out: join(dir, 'o2') })).rejects.toThrow(/too short/);
      await expect(runTokenize(file, { out: join(dir, 'o3'), tensor: ['ids'] })).rejects.toThrow(/2-D float tensor/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
