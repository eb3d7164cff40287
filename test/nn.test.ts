import { describe, expect, it } from 'vitest';
import { Mlp } from '../lib/nn/mlp.js';
import { ItemSoftmax, cosineMarginLoss } from '../lib/llm/loss.js';
import { rng, randomVectors } from './helpers/random.js';

describe('Mlp (projection head)', () => {
  it('backward matches finite differences (inputs and weights)', () => {
    const mlp = new Mlp([5, 7, 6, 3], 1);
    const r = rng(2);
    const B = 4;
    const x = randomVectors(r, B, 5);
    const w = randomVectors(r, B, 3); // loss = sum(w * y)
    const lossOf = (xx: Float32Array) => mlp.forward(xx, B).reduce((s, y, i) => s + y * w[i], 0);
    mlp.forward(x, B, true);
    mlp.zeroGrad();
    const gx = mlp.backward(w);
    // h small enough not to cross a ReLU kink on this data (1e-2 does for input 17).
    const h = 1e-3;
    for (const i of [0, 3, 7, 17, 19]) {
      const xp = x.slice(); xp[i] += h;
      const xm = x.slice(); xm[i] -= h;
      expect(gx[i]).toBeCloseTo((lossOf(xp) - lossOf(xm)) / (2 * h), 3);
    }
    for (const [l, i] of [[0, 4], [1, 10], [2, 5]]) {
      const W = mlp.weights[l];
      const old = W[i];
      W[i] = old + h; const lp = lossOf(x);
      W[i] = old - h; const lm = lossOf(x);
      W[i] = old;
      expect(mlp.gradW[l][i]).toBeCloseTo((lp - lm) / (2 * h), 3);
    }
  });

  it('learns a linear map with AdamW', () => {
    const mlp = new Mlp([4, 16, 2], 3);
    const r = rng(4);
    const B = 64;
    const x = randomVectors(r, B, 4);
    const t = new Float32Array(B * 2).map((_, i) => x[Math.floor(i / 2) * 4] * (i % 2 ? 1 : -2) + 0.5 * x[Math.floor(i / 2) * 4 + 1]);
    let last = Infinity;
    for (let it = 0; it < 400; it++) {
      const y = mlp.forward(x, B, true);
      const g = y.map((v, i) => (2 * (v - t[i])) / B);
      last = y.reduce((s, v, i) => s + (v - t[i]) ** 2, 0) / B;
      mlp.zeroGrad();
      mlp.backward(g);
      mlp.step({ lr: 1e-2 });
    }
    expect(last).toBeLessThan(0.01);
  });
});

describe('cosine margin loss', () => {
  it('hand-worked values', () => {
    // z = (1, 0); pos = (1, 1): cos = 1/sqrt2; neg = (0, 1): cos 0 < gamma -> no loss.
    const { loss } = cosineMarginLoss(Float32Array.from([1, 0]), Float32Array.from([1, 1]), Float32Array.from([0, 1]), 2, 0.1);
    expect(loss).toBeCloseTo(1 - Math.SQRT1_2, 6);
    const l2 = cosineMarginLoss(Float32Array.from([1, 0]), Float32Array.from([1, 0]), Float32Array.from([1, 1]), 2, 0.1).loss;
    expect(l2).toBeCloseTo(Math.SQRT1_2 - 0.1, 6);
  });

  it('gradient matches finite differences', () => {
    const r = rng(8);
    const d = 6, B = 3;
    const z = randomVectors(r, B, d), p = randomVectors(r, B, d), n = randomVectors(r, B, d);
    const { grad } = cosineMarginLoss(z, p, n, d, -0.5); // gamma < -1 ... use -0.5 so most negatives are active
    const h = 1e-3;
    for (let i = 0; i < z.length; i++) {
      const zp = z.slice(); zp[i] += h;
      const zm = z.slice(); zm[i] -= h;
      const fd = (cosineMarginLoss(zp, p, n, d, -0.5).loss - cosineMarginLoss(zm, p, n, d, -0.5).loss) / (2 * h);
      expect(grad[i]).toBeCloseTo(fd, 3);
    }
  });
});

describe('full-softmax loss (ItemSoftmax)', () => {
  // Items (1, 0), (0, 1), (-2, 0): unit rows (1, 0), (0, 1), (-1, 0) for cosine.
  const items = Float32Array.from([1, 0, 0, 1, -2, 0]);

  it('hand-worked values, cosine and dot', () => {
    const z = Float32Array.from([3, 0]);
    // cosine, temperature 0.5: logits 2, 0, -2; target 1.
    const cos = new ItemSoftmax(items, 2, 'cosine', 0.5).loss(z, [1]).loss;
    expect(cos).toBeCloseTo(Math.log(Math.exp(2) + 1 + Math.exp(-2)) - 0, 5);
    // dot: logits 3, 0, -6; target 0.
    const dot = new ItemSoftmax(items, 2, 'dot').loss(z, [0]).loss;
    expect(dot).toBeCloseTo(Math.log(Math.exp(3) + 1 + Math.exp(-6)) - 3, 5);
    // Excluding item 0 from the softmax of row 0 (target 1) leaves logits 0, -2.
    const ex = new ItemSoftmax(items, 2, 'cosine', 0.5).loss(z, [1], () => [0]).loss;
    expect(ex).toBeCloseTo(Math.log(1 + Math.exp(-2)), 5);
    // The target itself is never excluded.
    expect(new ItemSoftmax(items, 2, 'cosine', 0.5).loss(z, [1], () => [1]).loss).toBeCloseTo(cos, 6);
  });

  it('gradient matches finite differences (cosine and dot, with exclusions)', () => {
    const r = rng(9);
    const d = 5, B = 3, N = 7;
    const v = randomVectors(r, N, d);
    const z = randomVectors(r, B, d);
    const targets = [2, 0, 6];
    const exclude = (b: number) => (b === 0 ? [1, 3] : b === 2 ? [2] : []);
    for (const sm of [new ItemSoftmax(v, d, 'cosine', 0.2), new ItemSoftmax(v, d, 'dot')]) {
      const { grad } = sm.loss(z, targets, exclude);
      const h = 1e-3;
      for (let i = 0; i < z.length; i++) {
        const zp = z.slice(); zp[i] += h;
        const zm = z.slice(); zm[i] -= h;
        const fd = (sm.loss(zp, targets, exclude).loss - sm.loss(zm, targets, exclude).loss) / (2 * h);
        expect(grad[i]).toBeCloseTo(fd, 3);
      }
    }
  });

  it('the cosine loss ignores the scale of z and of the items', () => {
    const r = rng(10);
    const v = randomVectors(r, 6, 4), z = randomVectors(r, 2, 4);
    const a = new ItemSoftmax(v, 4, 'cosine', 0.3).loss(z, [1, 4]).loss;
    const b = new ItemSoftmax(v.map((x) => 3 * x), 4, 'cosine', 0.3).loss(z.map((x) => 0.1 * x), [1, 4]).loss;
    expect(b).toBeCloseTo(a, 5);
  });

  it('names bad input', () => {
    const sm = new ItemSoftmax(items, 2, 'cosine');
    expect(() => sm.loss(Float32Array.from([1, 0]), [3])).toThrow(/target 3 of row 0 is not an item id/);
    expect(() => sm.loss(Float32Array.from([1, 0, 1]), [0])).toThrow(/must be \(B \* 2\)/);
    expect(() => new ItemSoftmax(items, 4, 'cosine')).toThrow(/numItems \* 4/);
    expect(() => new ItemSoftmax(items, 2, 'cosine', 0)).toThrow(/temperature/);
  });
});
