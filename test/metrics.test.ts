import { describe, expect, it } from 'vitest';
import { metricsFromRanks, ndcgAt } from '../lib/eval/metrics.js';
import { evaluateVectors } from '../lib/eval/evaluate.js';
import type { Split } from '../lib/data/types.js';

describe('metrics', () => {
  it('hand-worked HR/NDCG', () => {
    // ranks 1, 3, 11, 25: HR@10 = 2/4; NDCG@10 = (1 + 1/log2(4)) / 4 = 0.375
    const m = metricsFromRanks([1, 3, 11, 25], [10, 20, 30]);
    expect(m.hr[10]).toBeCloseTo(0.5, 12);
    expect(m.ndcg[10]).toBeCloseTo(0.375, 12);
    expect(m.hr[20]).toBeCloseTo(0.75, 12);
    expect(m.ndcg[20]).toBeCloseTo((1 + 0.5 + 1 / Math.log2(12)) / 4, 12);
    expect(m.hr[30]).toBe(1);
    expect(ndcgAt(2, 1)).toBe(0);
  });

  it('K larger than the number of candidates: everything is a hit', () => {
    expect(metricsFromRanks([2, 3], [1000]).hr[1000]).toBe(1);
  });

  it('rejects bad ranks and cut-offs', () => {
    expect(() => metricsFromRanks([0], [10])).toThrow(/1-based/);
    expect(() => metricsFromRanks([1], [0])).toThrow(/positive integer/);
    expect(() => metricsFromRanks([1], [])).toThrow(/at least one/);
  });

  it('evaluation: ties count against the target and the user\'s items are excluded (hand-worked)', async () => {
    // 1 user, 5 items, dim 1. User vector 1; item scores = [5, 3, 3, 9, 1].
    // train = [3] (score 9, excluded), valid = 4 (score 1), test = 1 (score 3).
    const split: Split = {
      numUsers: 1, numItems: 5, train: [Int32Array.from([3])], valid: Int32Array.from([4]), test: Int32Array.from([1]),
      heldOut: new Uint8Array(1), trainUsers: Int32Array.from([0]), unseenUsers: new Int32Array(0),
      report: { users: 1, full: 1, noValid: 0, trainOnly: 0, empty: 0, unseen: 0, unseenFraction: 0, seed: 0 },
    };
    const items = Float32Array.from([5, 3, 3, 9, 1]);
    const user = Float32Array.from([1]);
    // test: item 3 (train) and 4 (valid) excluded; 0 scores 5 > 3; item 2 ties -> rank 3.
    const t = await evaluateVectors({ split, which: 'test', userVectors: user, itemVectors: items, dim: 1, ks: [1, 2, 3] });
    expect(Array.from(t.ranks)).toEqual([3]);
    expect(t.metrics.hr).toEqual({ 1: 0, 2: 0, 3: 1 });
    expect(t.metrics.ndcg[3]).toBeCloseTo(0.5, 12);
    // valid: only train item 3 excluded; items 0, 1, 2 score above 1, the target itself -> rank 4.
    const v = await evaluateVectors({ split, which: 'valid', userVectors: user, itemVectors: items, dim: 1, ks: [10] });
    expect(Array.from(v.ranks)).toEqual([4]);
  });
});
