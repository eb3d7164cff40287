import { describe, expect, it } from 'vitest';
import { datasetFromSequences } from '../lib/data/load.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { evaluatePopularity } from '../lib/baselines/pop.js';
import { usersWithTarget } from '../lib/eval/evaluate.js';

describe('leave-one-out split', () => {
  it('last = test, second to last = valid, rest = train; short users handled and reported', () => {
    const ds = datasetFromSequences('t', [['a', ['1', '2', '3', '4']], ['b', ['1', '2']], ['c', ['3']]]);
    const s = splitLeaveOneOut(ds);
    const it = (i: number) => ds.items[i];
    expect(Array.from(s.train[0], it)).toEqual(['1', '2']);
    expect(it(s.valid[0])).toBe('3');
    expect(it(s.test[0])).toBe('4');
    expect(Array.from(s.train[1], it)).toEqual(['1']);
    expect(s.valid[1]).toBe(-1);
    expect(it(s.test[1])).toBe('2');
    expect(Array.from(s.train[2], it)).toEqual(['3']);
    expect(s.test[2]).toBe(-1);
    expect(s.report).toMatchObject({ users: 3, full: 1, noValid: 1, trainOnly: 1, empty: 0 });
    expect(Array.from(usersWithTarget(s, 'valid'))).toEqual([0]);
    expect(Array.from(usersWithTarget(s, 'test'))).toEqual([0, 1]);
  });

  it('never puts a test or validation target into the user\'s training items', () => {
    const s = splitLeaveOneOut(syntheticDataset({ users: 300, items: 200, seed: 3 }));
    for (let u = 0; u < s.numUsers; u++) {
      const tr = new Set(s.train[u]);
      expect(tr.has(s.test[u])).toBe(false);
      expect(tr.has(s.valid[u])).toBe(false);
    }
  });

  it('holds out the least-active users, seeded and reproducible', () => {
    const ds = syntheticDataset({ users: 400, items: 300, minPerUser: 5, maxPerUser: 40, seed: 5 });
    const a = splitLeaveOneOut(ds, { unseenFraction: 0.05, seed: 7 });
    const b = splitLeaveOneOut(ds, { unseenFraction: 0.05, seed: 7 });
    const c = splitLeaveOneOut(ds, { unseenFraction: 0.05, seed: 8 });
    expect(a.unseenUsers.length).toBe(20);
    expect(Array.from(a.unseenUsers)).toEqual(Array.from(b.unseenUsers));
    const maxUnseen = Math.max(...Array.from(a.unseenUsers, (u) => ds.sequences[u].length));
    const minSeen = Math.min(...Array.from(a.trainUsers, (u) => ds.sequences[u].length));
    expect(maxUnseen).toBeLessThanOrEqual(minSeen);
    // Another seed breaks ties differently but picks equally short users.
    expect(Math.max(...Array.from(c.unseenUsers, (u) => ds.sequences[u].length))).toBe(maxUnseen);
    expect(a.trainUsers.length + a.unseenUsers.length).toBe(400);
    for (const u of a.unseenUsers) expect(a.heldOut[u]).toBe(1);
    expect(() => splitLeaveOneOut(ds, { unseenFraction: 0.9 })).toThrow(/unseenFraction/);
  });
});

describe('synthetic data and the most-popular baseline', () => {
  it('is seeded and has planted structure (users mostly pick their group)', () => {
    const a = syntheticDataset({ seed: 4 });
    const b = syntheticDataset({ seed: 4 });
    expect(a.sequences.map((s) => Array.from(s))).toEqual(b.sequences.map((s) => Array.from(s)));
    let inGroup = 0, total = 0;
    a.sequences.forEach((s, u) => s.forEach((i) => { total++; inGroup += a.itemGroup[i] === a.userGroup[u] ? 1 : 0; }));
    expect(inGroup / total).toBeGreaterThan(0.75);
  });

  it('most-popular: hand-worked ranking by training counts', async () => {
    // Items: p is in 3 training lists, q in 2, r in 1. User d: train [r], valid q, test p.
    const ds = datasetFromSequences('pop', [
      ['a', ['p', 'q', 'x', 'y']], ['b', ['p', 'q', 'y', 'x']], ['c', ['p', 'r', 'x', 'y']], ['d', ['r', 'q', 'p']],
    ]);
    const s = splitLeaveOneOut(ds);
    const r = await evaluatePopularity(s, 'test', { ks: [1, 2], users: Int32Array.from([3]) });
    // counts: p 3, q 2, r 2 (c and d), x 0, y 0. d's test = p, excluded r (train) and q (valid): rank 1.
    expect(Array.from(r.ranks)).toEqual([1]);
    const v = await evaluatePopularity(s, 'valid', { ks: [1, 2], users: Int32Array.from([3]) });
    // valid target q (2) vs p (3) ahead; r excluded (train): rank 2.
    expect(Array.from(v.ranks)).toEqual([2]);
  });
});
