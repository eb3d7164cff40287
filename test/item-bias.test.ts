// Cosine plus a learned per-item bias (lib/llm/bias.ts): the loss and its gradients, the
// (d + 1)-dimensional inner product that serves it, the popularity prior, the bias's Adam state,
// and a softmax-cosine-bias model trained, evaluated and served end to end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ItemSoftmax } from '../lib/llm/loss.js';
import { ItemBias, biasedItemRows, biasedQueryRows, popularityPrior } from '../lib/llm/bias.js';
import { Recommender } from '../lib/serve/recommender.js';
import { loadCfStage } from '../lib/cf/store.js';
import { loadLLMStage } from '../lib/llm/stage.js';
import { requireManifest } from '../lib/io/manifest.js';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { faissAvailable } from '../lib/retrieval/faiss.js';
import { rng, randomVectors } from './helpers/random.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { buildServeModel } from './helpers/serve-model.js';

const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let ab = 0, aa = 0, bb = 0;
  for (let k = 0; k < a.length; k++) (ab += a[k] * b[k]), (aa += a[k] ** 2), (bb += b[k] ** 2);
  return aa && bb ? ab / Math.sqrt(aa * bb) : 0;
};

describe('softmax-cosine-bias loss', () => {
  // Items (1, 0), (0, 1), (-2, 0): cosines with z = (3, 0) are 1, 0, -1.
  const items = Float32Array.from([1, 0, 0, 1, -2, 0]);

  it('hand-worked value: logits cos / temperature + b', () => {
    const bias = Float32Array.from([0, 1.5, -1]);
    // temperature 0.5: logits 2, 1.5, -3; target 1.
    const r = new ItemSoftmax(items, 2, 'cosine', 0.5).loss(Float32Array.from([3, 0]), [1], undefined, bias);
    expect(r.loss).toBeCloseTo(Math.log(Math.exp(2) + Math.exp(1.5) + Math.exp(-3)) - 1.5, 5);
    // d loss / d b = softmax - onehot
    const Z = Math.exp(2) + Math.exp(1.5) + Math.exp(-3);
    expect(Array.from(r.biasGrad!)).toEqual([Math.exp(2) / Z, Math.exp(1.5) / Z - 1, Math.exp(-3) / Z].map((x) => expect.closeTo(x, 5)));
    // An excluded item takes no part: no probability, no gradient.
    const ex = new ItemSoftmax(items, 2, 'cosine', 0.5).loss(Float32Array.from([3, 0]), [1], () => [0], bias);
    expect(ex.loss).toBeCloseTo(Math.log(Math.exp(1.5) + Math.exp(-3)) - 1.5, 5);
    expect(ex.biasGrad![0]).toBe(0);
  });

  it('gradients for z and for the bias match finite differences (batch, exclusions)', () => {
    const r = rng(21);
    const d = 5, B = 3, N = 7;
    const v = randomVectors(r, N, d);
    const z = randomVectors(r, B, d);
    const bias = randomVectors(r, N, 1);
    const targets = [2, 0, 6];
    const exclude = (b: number) => (b === 0 ? [1, 3] : b === 2 ? [2] : []);
    const sm = new ItemSoftmax(v, d, 'cosine', 0.2);
    const { grad, biasGrad } = sm.loss(z, targets, exclude, bias);
    const h = 1e-3;
    for (let i = 0; i < z.length; i++) {
      const zp = z.slice(); zp[i] += h;
      const zm = z.slice(); zm[i] -= h;
      expect(grad[i]).toBeCloseTo((sm.loss(zp, targets, exclude, bias).loss - sm.loss(zm, targets, exclude, bias).loss) / (2 * h), 3);
    }
    for (let i = 0; i < N; i++) {
      const bp = bias.slice(); bp[i] += h;
      const bm = bias.slice(); bm[i] -= h;
      expect(biasGrad![i]).toBeCloseTo((sm.loss(z, targets, exclude, bp).loss - sm.loss(z, targets, exclude, bm).loss) / (2 * h), 3);
    }
    // Without a bias there is no bias gradient, and a wrongly sized bias is named.
    expect(sm.loss(z, targets).biasGrad).toBeUndefined();
    expect(() => sm.loss(z, targets, undefined, new Float32Array(N - 1))).toThrow(/item bias has 6 entries for 7 items/);
  });
});

describe('biased scoring as an inner product', () => {
  it('item row . query row = cos(z, v_i) / temperature + b_i, zero vectors included', () => {
    const r = rng(4);
    const d = 6, N = 9, B = 4;
    const v = randomVectors(r, N, d);
    v.fill(0, 3 * d, 4 * d); // item 3 is a zero vector
    const z = randomVectors(r, B, d);
    z.fill(0, 0, d); // query 0 is a zero vector: ranked by the bias alone
    const bias = randomVectors(r, N, 1);
    const items = biasedItemRows(v, d, bias, 0.25);
    const q = biasedQueryRows(z.map((x) => 3 * x), d); // the scale of z does not matter
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < N; i++) {
        let dot = 0;
        for (let k = 0; k <= d; k++) dot += q[b * (d + 1) + k] * items[i * (d + 1) + k];
        expect(dot).toBeCloseTo(cos(z.subarray(b * d, (b + 1) * d), v.subarray(i * d, (i + 1) * d)) / 0.25 + bias[i], 5);
      }
    }
    expect(() => biasedItemRows(v, d, bias.subarray(1), 0.25)).toThrow(/8 biases/);
    expect(() => biasedItemRows(v, d, bias, 0)).toThrow(/temperature/);
    expect(() => biasedQueryRows(z.subarray(1), d)).toThrow(/must be \(B \* 6\)/);
  });

  it('the popularity prior is the centred log of training counts + 1', () => {
    const prior = popularityPrior([2, 3, 0]);
    const raw = [Math.log(3), Math.log(4), 0];
    const mean = raw.reduce((s, x) => s + x, 0) / 3;
    expect(Array.from(prior)).toEqual(raw.map((x) => expect.closeTo(x - mean, 6)));
  });
});

describe('ItemBias (Adam state)', () => {
  it("Adam's first step moves every entry with a gradient by lr against its sign", () => {
    const b = new ItemBias(3, Float32Array.from([1, 2, 3]));
    b.step(Float32Array.from([0.5, -0.001, 0]), 0.1);
    expect(Array.from(b.values)).toEqual([expect.closeTo(0.9, 5), expect.closeTo(2.1, 5), 3]);
    expect(b.steps).toBe(1);
  });

  it('rejects bad state before changing anything', () => {
    const b = new ItemBias(2);
    expect(() => b.setState(new Float32Array(2), Float32Array.from([0, -1]), 3, 'ck')).toThrow(/ck: item-bias moments/);
    expect(() => b.setState(new Float32Array(3), new Float32Array(3), 3, 'ck')).toThrow(/3\/3 for 2 items/);
    expect(() => b.setState(new Float32Array(2), new Float32Array(2), -1, 'ck')).toThrow(/step count/);
    expect(b.steps).toBe(0);
    expect(() => new ItemBias(0)).toThrow(/positive integer/);
    expect(() => b.step(new Float32Array(3), 0.1)).toThrow(/gradient of 3 for 2 items/);
  });
});

describe('a softmax-cosine-bias model, trained, evaluated and served', () => {
  const tmp = tempDir('tokenrec-bias-');
  const dataset = syntheticDataset({ users: 150, items: 100, seed: 3 });
  let dir: string;
  let rec: Recommender;

  beforeAll(async () => {
    dir = buildServeModel(tmp.dir, 'bias', ['--llm-loss', 'softmax-cosine-bias', '--temperature', '0.2', '--llm-epochs', '2']);
    rec = await Recommender.load(dir, { scoring: 'cosine-bias', dataset, threads: 1 });
  }, 120_000);
  afterAll(async () => {
    await rec?.dispose();
  });

  it('records test and validation metrics for the biased scoring; eval reproduces them', () => {
    const m = requireManifest(dir).stages.llm.metrics as { testBias: { hr: Record<number, number> }; validBias: { ndcg: Record<number, number> } };
    expect(m.testBias.hr[20]).toBeGreaterThan(0);
    expect(m.validBias.ndcg[20]).toBeGreaterThan(0);
    const r = runCli(['eval', dir, '--scoring', 'cosine-bias', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { metrics: { hr: Record<number, number> } }).metrics.hr[20]).toBeCloseTo(m.testBias.hr[20], 10);
  });

  it('serves cos(z, v_i) / temperature + b_i: the same items and scores as a naive ranking', async () => {
    const cf = loadCfStage(dir);
    const { model } = loadLLMStage(dir);
    const bias = model.itemBias!.values;
    model.dispose();
    const D = cf.dim;
    const r = rng(5);
    const q = randomVectors(r, 1, D);
    const got = await rec.recommend({ userVector: q, k: 12, excludeSeen: false });
    const want = Array.from({ length: cf.itemVectors.length / D }, (_, i) => ({ i, s: cos(q, cf.itemVectors.subarray(i * D, (i + 1) * D)) / 0.2 + bias[i] }))
      .sort((a, b) => b.s - a.s)
      .slice(0, 12);
    expect(got.items.map((x) => x.index)).toEqual(want.map((x) => x.i));
    got.items.forEach((x, j) => expect(x.score).toBeCloseTo(want[j].s, 4));
    // The default scoring is the best of the three on validation.
    const auto = await Recommender.load(dir, { dataset, threads: 1 });
    const v = auto.info().validNdcg20;
    expect(v['cosine-bias']).toBeDefined();
    const best = (['cosine', 'dot', 'cosine-bias'] as const).reduce((b, s) => (v[s]! > v[b]! ? s : b), 'cosine' as 'cosine' | 'dot' | 'cosine-bias');
    expect(auto.scoring).toBe(best);
    await auto.dispose();
  });

  it('new items join with the bias of the least-trained items', async () => {
    const cf = loadCfStage(dir);
    const D = cf.dim;
    const top = (await rec.recommend({ user: 'u7', k: 1 })).items[0];
    const v = cf.itemVectors.slice(top.index * D, (top.index + 1) * D);
    const [idx] = await rec.addItems(v, ['brand-new']);
    const r = await rec.recommend({ user: 'u7', k: 100 });
    const fresh = r.items.find((x) => x.index === idx)!;
    const old = r.items.find((x) => x.index === top.index)!;
    // Same direction, so the same cosine: the scores differ by the bias only.
    const { model } = loadLLMStage(dir);
    const oldBias = model.itemBias!.values[top.index];
    model.dispose();
    const counts = new Int32Array(cf.itemVectors.length / D);
    for (const i of cf.trainIdx) counts[i]++;
    const least = Math.min(...counts);
    const { model: m2 } = loadLLMStage(dir);
    const coldBias = Array.from(counts).reduce((s, c, i) => (c === least ? s + m2.itemBias!.values[i] : s), 0) / counts.filter((c) => c === least).length;
    m2.dispose();
    expect(fresh.score - old.score).toBeCloseTo(coldBias - oldBias, 4);
  });

  it('faiss serves it too, with the same ranking', async () => {
    if (!faissAvailable().ok) return;
    const f = await Recommender.load(dir, { scoring: 'cosine-bias', index: 'faiss', dataset, threads: 1 });
    const n = await Recommender.load(dir, { scoring: 'cosine-bias', dataset, threads: 1 });
    try {
      for (const user of ['u3', 'u40']) {
        const a = await f.recommend({ user, k: 10 });
        const b = await n.recommend({ user, k: 10 });
        expect(a.items.map((x) => x.index)).toEqual(b.items.map((x) => x.index));
      }
    } finally {
      await f.dispose();
      await n.dispose();
    }
  });

  it('a model without an item bias says so when asked for cosine-bias', async () => {
    const plain = buildServeModel(tmp.dir, 'plain');
    await expect(Recommender.load(plain, { scoring: 'cosine-bias', dataset, threads: 1 })).rejects.toThrow(/needs a model trained with an item bias/);
    const r = runCli(['eval', plain, '--scoring', 'cosine-bias']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/softmax-cosine-bias/);
  }, 120_000);
});
