// The Recommender (lib/serve/recommender.ts) on a tiny model directory trained by the CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Recommender, lengthRuns, type Recommendation } from '../lib/serve/recommender.js';
import { RecommenderError } from '../lib/serve/errors.js';
import { loadCfStage } from '../lib/cf/store.js';
import { loadLLMStage } from '../lib/llm/stage.js';
import { loadTokenizerCodes } from '../lib/tokenizer/codes.js';
import { padPrompts, promptTokens } from '../lib/llm/model.js';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { scoreToFile } from '../lib/cli/score.js';
import { faissAvailable } from '../lib/retrieval/faiss.js';
import { tempDir } from './helpers/tmp.js';
import { buildServeModel } from './helpers/serve-model.js';

const tmp = tempDir('tokenrec-serve-');
let dir: string;
let rec: Recommender;
const dataset = syntheticDataset({ users: 150, items: 100, seed: 3 });
const split = splitLeaveOneOut(dataset, { unseenFraction: 0.1, seed: 0 });

beforeAll(async () => {
  dir = buildServeModel(tmp.dir);
  rec = await Recommender.load(dir, { threads: 1 });
});
afterAll(async () => {
  await rec?.dispose();
});

/**
 * Same items in the same order, scores within a relative tolerance (prompts padded to another
 * length give ~1e-5 relative differences in z); a swap is allowed only between near-equal scores.
 */
function expectSameRanking(a: Recommendation, b: Recommendation, rel = 1e-4): void {
  expect(a.items.length).toBe(b.items.length);
  a.items.forEach((x, j) => {
    const y = b.items[j];
    const tol = rel * Math.max(1, Math.abs(x.score));
    expect(Math.abs(x.score - y.score)).toBeLessThan(tol);
    if (x.index !== y.index) {
      const other = b.items.find((z) => z.index === x.index);
      expect(other, `item ${x.id} missing`).toBeDefined();
      expect(Math.abs(other!.score - x.score)).toBeLessThan(tol);
    }
  });
}

function naiveTopK(q: Float32Array, items: Float32Array, dim: number, k: number, exclude: Set<number>, cosine: boolean): number[] {
  const n = items.length / dim;
  const norm = (v: Float32Array, o: number) => Math.sqrt(Array.from({ length: dim }, (_, j) => v[o + j] ** 2).reduce((s, x) => s + x, 0));
  const qn = norm(q, 0);
  const scored: { i: number; s: number }[] = [];
  for (let i = 0; i < n; i++) {
    if (exclude.has(i)) continue;
    let s = 0;
    for (let j = 0; j < dim; j++) s += q[j] * items[i * dim + j];
    if (cosine) s /= qn * norm(items, i * dim) || 1;
    scored.push({ i, s });
  }
  scored.sort((x, y) => y.s - x.s || x.i - y.i);
  return scored.slice(0, k).map((x) => x.i);
}

describe('Recommender', () => {
  it('loads the model and reports where it runs', () => {
    const info = rec.info();
    expect(info.users).toBe(150);
    expect(info.items).toBe(100);
    expect(info.dim).toBe(16);
    expect(['cosine', 'dot']).toContain(info.scoring);
    // the default scoring is the one that did better on validation
    const { cosine, dot } = info.validNdcg20;
    expect(info.scoring).toBe(dot! > cosine! ? 'dot' : 'cosine');
    expect(info.onnx.provider).toBe('cpu');
    expect(info.onnx.worker).toBe(false);
  });

  it("recommends the dataset's item ids with dense indices, best first, without the user's training items", async () => {
    const r = await rec.recommend({ user: 'u7', k: 10 });
    expect(r.user).toBe('u7');
    expect(r.items).toHaveLength(10);
    const train = new Set(split.train[7]);
    for (const it of r.items) {
      expect(it.id).toBe(dataset.items[it.index]);
      expect(train.has(it.index)).toBe(false);
    }
    for (let j = 1; j < r.items.length; j++) expect(r.items[j].score).toBeLessThanOrEqual(r.items[j - 1].score);
    // excludeSeen false lets training items back in; `exclude` removes named items
    const all = await rec.recommend({ user: 'u7', k: 100, excludeSeen: false });
    expect(all.items).toHaveLength(100);
    const ex = await rec.recommend({ user: 'u7', k: 10, exclude: [r.items[0].id] });
    expect(ex.items.map((x) => x.id)).not.toContain(r.items[0].id);
    expect(ex.items[0].id).toBe(r.items[1].id);
  });

  it('serves the ONNX backbone: a user request equals the native model on the same prompt', async () => {
    const { model } = loadLLMStage(dir);
    const codes = loadTokenizerCodes(dir);
    const cap = rec.info().historyCap;
    try {
      for (const u of [3, 40]) {
        const h = split.train[u];
        const history = h.length > cap ? h.subarray(h.length - cap) : h;
        const z = await model.embed(padPrompts([promptTokens(model.vocab, codes.users, codes.items, { user: u, history, target: -1 }, 'seen', 0)]));
        const viaVector = await rec.recommend({ userVector: z, k: 15, exclude: Array.from(h, (i) => dataset.items[i]) });
        const viaUser = await rec.recommend({ user: dataset.users[u], k: 15 });
        expectSameRanking(viaUser, viaVector, 1e-3);
      }
    } finally {
      model.dispose();
    }
  });

  it('userVector queries rank exactly like a naive scan of the item vectors', async () => {
    const cf = loadCfStage(dir);
    const D = cf.dim;
    for (const u of [0, 11, 99]) {
      const q = cf.userVectors.slice(u * D, (u + 1) * D);
      const exclude = new Set(split.train[u]);
      const r = await rec.recommend({ userVector: Array.from(q), k: 12, exclude: [...exclude].map((i) => dataset.items[i]) });
      expect(r.items.map((x) => x.index)).toEqual(naiveTopK(q, cf.itemVectors, D, 12, exclude, rec.scoring === 'cosine'));
    }
  });

  it('recommend, recommendBatch and scoreAll agree', async () => {
    const users = dataset.users.slice(0, 12);
    const single = [];
    for (const user of users) single.push(await rec.recommend({ user, k: 8 }));
    const batch = await rec.recommendBatch(users.map((user) => ({ user, k: 8 })));
    const streamed: Recommendation[] = [];
    for await (const r of rec.scoreAll(users, { k: 8, batchSize: 5 })) streamed.push(r);
    expect(streamed.map((r) => r.user)).toEqual(users);
    users.forEach((_, j) => {
      expectSameRanking(single[j], batch[j]);
      expectSameRanking(single[j], streamed[j]);
    });
    // every user by default, in index order
    let n = 0;
    for await (const r of rec.scoreAll(undefined, { k: 3, batchSize: 64 })) {
      expect(r.user).toBe(dataset.users[n]);
      n++;
    }
    expect(n).toBe(150);
  });

  it('scoreAll reports a bad user id, and stopping early leaves nothing unhandled', async () => {
    const drain = async (it: AsyncIterable<Recommendation>) => {
      for await (const _ of it) void _;
    };
    await expect(drain(rec.scoreAll(['u1', 'u2', 'ghost'], { batchSize: 2 }))).rejects.toMatchObject({ code: 'ERR_TOKENREC_UNKNOWN_USER' });
    // the second batch (with 'ghost') fails while the first is being read; the reader stops
    const seen: string[] = [];
    for await (const r of rec.scoreAll(['u1', 'u2', 'ghost', 'u3'], { batchSize: 2 })) {
      seen.push(r.user!);
      break;
    }
    expect(seen).toEqual(['u1']);
    await new Promise((r) => setTimeout(r, 200)); // let the failed batch settle inside this test
  });

  it('score writes one JSON line per user, atomically', async () => {
    const out = join(tmp.dir, 'scores', 'all.jsonl');
    const r = await scoreToFile(rec, out, { k: 5, batchSize: 32 });
    expect(r.users).toBe(150);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Recommendation);
    expect(lines).toHaveLength(150);
    expectSameRanking(lines[7], await rec.recommend({ user: 'u7', k: 5 }));
  });

  it('serves held-out (unseen) users from the items they brought', async () => {
    expect(split.unseenUsers.length).toBeGreaterThan(0);
    const u = split.unseenUsers[0];
    const r = await rec.recommend({ user: dataset.users[u], k: 10 });
    expect(r.items).toHaveLength(10);
    const train = new Set(split.train[u]);
    for (const it of r.items) expect(train.has(it.index)).toBe(false);
  });

  it('serves a new user from a history (fold-in, frozen tokenizer) and addUser makes it a user', async () => {
    const history = ['i3', 'i17', 'i42', 'i8'];
    const r = await rec.recommend({ history, k: 10 });
    expect(r.items).toHaveLength(10);
    for (const it of r.items) expect(history).not.toContain(it.id);
    // a new user's result does not depend on the requests sharing its batch
    const mixed = await rec.recommendBatch([{ history: ['i50', 'i51'], k: 10 }, { user: 'u2', k: 10 }, { history, k: 10 }]);
    expectSameRanking(mixed[2], r);
    const u = await rec.addUser('new-user-1', history);
    expect(u).toBe(150);
    expect(rec.numUsers).toBe(151);
    expectSameRanking(await rec.recommend({ user: 'new-user-1', k: 10 }), r);
    await expect(rec.addUser('new-user-1', history)).rejects.toMatchObject({ code: 'ERR_TOKENREC_DUPLICATE_ID' });
    await expect(rec.addUser('x', ['nope'])).rejects.toMatchObject({ code: 'ERR_TOKENREC_UNKNOWN_ITEM' });
  });

  it('rejects bad requests with codes the HTTP layer maps', async () => {
    const code = async (req: unknown) => {
      try {
        await rec.recommend(req as never);
      } catch (e) {
        expect(e).toBeInstanceOf(RecommenderError);
        return [(e as RecommenderError).code, (e as RecommenderError).statusCode];
      }
      return 'no error';
    };
    expect(await code({ user: 'nobody' })).toEqual(['ERR_TOKENREC_UNKNOWN_USER', 404]);
    expect(await code({ user: 'u1', k: 0 })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ user: 'u1', k: 2.5 })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ user: 'u1', k: 5000 })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ user: 'u1', history: ['i1'] })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({})).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ user: 7 })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ history: [] })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ history: ['i1', 'zzz'] })).toEqual(['ERR_TOKENREC_UNKNOWN_ITEM', 400]);
    expect(await code({ userVector: [1, 2] })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ userVector: new Array(16).fill(Number.NaN) })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    expect(await code({ user: 'u1', exclude: 'i1' })).toEqual(['ERR_TOKENREC_BAD_REQUEST', 400]);
    await expect(rec.recommendBatch([{ user: 'u1' }, { user: 'ghost' }])).rejects.toThrow(/request 1: unknown user 'ghost'/);
    // still serving
    expect((await rec.recommend({ user: 'u1', k: 3 })).items).toHaveLength(3);
  });
});

describe('lengthRuns', () => {
  it('cuts runs at the batch size and where padding would exceed 30 % of the tokens', () => {
    const p = (n: number) => ({ tokens: new Array<number>(n).fill(1) });
    const lens = (runs: { tokens: number[] }[][]) => runs.map((r) => r.map((x) => x.tokens.length));
    expect(lens(lengthRuns([p(10), p(10), p(11), p(12)], 64))).toEqual([[10, 10, 11, 12]]);
    expect(lens(lengthRuns([p(10), p(10), p(10)], 2))).toEqual([[10, 10], [10]]);
    // 3 * 20 = 60 > 1.3 * 40: the long prompt starts a run of its own
    expect(lens(lengthRuns([p(10), p(10), p(20), p(21)], 64))).toEqual([[10, 10], [20, 21]]);
    expect(lengthRuns([], 8)).toEqual([]);
  });
});

describe('Recommender.addItems', () => {
  it('makes new items retrievable and usable in histories', async () => {
    const r = await Recommender.load(dir, { scoring: 'dot', dataset });
    try {
      const cf = loadCfStage(dir);
      const D = cf.dim;
      const before = await r.recommend({ user: 'u5', k: 5 });
      const top = before.items[0].index;
      // a new item pointing where the top item points, three times longer: first under dot scoring
      const v = new Float32Array(2 * D);
      for (let j = 0; j < D; j++) {
        v[j] = 3 * cf.itemVectors[top * D + j];
        v[D + j] = -cf.itemVectors[top * D + j];
      }
      const idx = await r.addItems(v, ['brand-new', 'anti']);
      expect(Array.from(idx)).toEqual([100, 101]);
      expect(r.numItems).toBe(102);
      const after = await r.recommend({ user: 'u5', k: 5 });
      expect(after.items[0]).toMatchObject({ id: 'brand-new', index: 100 });
      expect(after.items[0].score).toBeCloseTo(3 * before.items[0].score, 3);
      expect(after.items[1].id).toBe(before.items[0].id);
      // new items can be in a new user's history (prompt tokens from the frozen item tokenizer) and are excluded
      const h = await r.recommend({ history: ['brand-new', 'i4'], k: 20 });
      expect(h.items.map((x) => x.id)).not.toContain('brand-new');
      // a history of items added after training only: no CF signal, the zero fold-in vector, still an answer
      expect((await r.recommend({ history: ['brand-new'], k: 5 })).items).toHaveLength(5);
      await expect(r.addItems(v.subarray(0, D), ['i3'])).rejects.toMatchObject({ code: 'ERR_TOKENREC_DUPLICATE_ID' });
      await expect(r.addItems(v, ['only-one'])).rejects.toMatchObject({ code: 'ERR_TOKENREC_BAD_REQUEST' });
    } finally {
      await r.dispose();
    }
    await expect(r.recommend({ user: 'u5' })).rejects.toMatchObject({ code: 'ERR_TOKENREC_DISPOSED' });
    // its fold-in context (built by the history requests above) went with it
    await expect(r.recommend({ history: ['i4'] })).rejects.toMatchObject({ code: 'ERR_TOKENREC_DISPOSED' });
    await expect(r.addUser('late', ['i4'])).rejects.toMatchObject({ code: 'ERR_TOKENREC_DISPOSED' });
  });
});

describe('codes of ids added at serving time', () => {
  it('a new item with an existing item\'s vector gets a tuple of its own (unique codes); transient users do not depend on their batch', async () => {
    const r = await Recommender.load(dir, { dataset });
    try {
      const cf = loadCfStage(dir);
      const D = cf.dim;
      const table = (r as unknown as { itemCodes: { codes: Int32Array; n: number; width: number } }).itemCodes;
      const K = table.width;
      const keys = () => new Set(Array.from({ length: table.n }, (_, i) => Array.from(table.codes.subarray(i * K, (i + 1) * K)).join()));
      expect(keys().size).toBe(100); // the training table names every item uniquely
      const v = new Float32Array(2 * D);
      v.set(cf.itemVectors.subarray(3 * D, 4 * D), 0);
      v.set(cf.itemVectors.subarray(3 * D, 4 * D), D);
      await r.addItems(v, ['twin-a', 'twin-b']);
      expect(keys().size).toBe(102);
      // transient history requests: the same history alone or in a batch gives the same answer
      const h = { history: ['i4', 'i7'], k: 5 };
      const alone = await r.recommend(h);
      const [inBatch] = await r.recommendBatch([h, { ...h }, { history: ['i4'], k: 5 }]);
      expectSameRanking(alone, inBatch);
    } finally {
      await r.dispose();
    }
  });
});

describe.skipIf(!faissAvailable().ok)("Recommender with index 'faiss'", () => {
  it('agrees with the native top-K for both scorings', async () => {
    for (const scoring of ['cosine', 'dot'] as const) {
      const a = await Recommender.load(dir, { index: 'faiss', scoring, dataset, threads: 1 });
      const b = await Recommender.load(dir, { index: 'native', scoring, dataset, threads: 1 });
      try {
        expect(a.info().index).toBe('faiss');
        const reqs = ['u1', 'u20', 'u33'].map((user) => ({ user, k: 10 }));
        const ra = await a.recommendBatch(reqs);
        const rb = await b.recommendBatch(reqs);
        ra.forEach((r, j) => expectSameRanking(r, rb[j], 1e-5));
      } finally {
        await a.dispose();
        await b.dispose();
      }
    }
  });
});

describe('Recommender.load checks the model directory', () => {
  it('refuses a file changed after training, naming it', async () => {
    const bad = join(tmp.dir, 'tampered');
    cpSync(dir, bad, { recursive: true });
    const f = join(bad, 'tokenizer_item.safetensors');
    const bytes = readFileSync(f);
    bytes[bytes.length - 3] ^= 0x40;
    writeFileSync(f, bytes);
    await expect(Recommender.load(bad)).rejects.toThrow(/tokenizer_item\.safetensors of stage 'tokenizer' is corrupted or was changed/);
    rmSync(join(bad, 'backbone.onnx'));
    cpSync(join(dir, 'tokenizer_item.safetensors'), f);
    await expect(Recommender.load(bad)).rejects.toThrow(/backbone\.onnx of stage 'llm' is missing/);
  });

  it('refuses data that is not the data the model was trained on', async () => {
    await expect(Recommender.load(dir, { dataset: syntheticDataset({ users: 150, items: 100, seed: 4 }) })).rejects.toThrow(/not the data the model was trained on/);
  });
});
