// Evaluation of user/item vectors on a split: full ranking over all items, one target per user,
// with the items the user already has excluded (PAPER.md §2): training items for the validation
// target; training + validation items for the test target.
import type { Backend } from '../native/addon.js';
import { toCsr, type Split } from '../data/types.js';
import { DEFAULT_KS, metricsFromRanks, type Metrics } from './metrics.js';
import { rankTargets, type Similarity } from './rank.js';

export type SplitName = 'valid' | 'test';

export interface EvaluateOptions {
  split: Split;
  which: SplitName;
  /** (numUsers * dim) vectors indexed by user id, or (users.length * dim) when `queryRows` is 'selected'. */
  userVectors: Float32Array;
  /** (numItems * dim) item vectors. */
  itemVectors: Float32Array;
  dim: number;
  /** Users to evaluate (default: users that take part in training and have a target in this split). */
  users?: Int32Array;
  /** 'all': userVectors has a row per user id (default); 'selected': one row per entry of `users`. */
  queryRows?: 'all' | 'selected';
  similarity?: Similarity;
  ks?: readonly number[];
  backend?: Backend;
}

export interface Evaluation {
  metrics: Metrics;
  /** Users evaluated, and each one's 1-based rank of its target (ties counted against it). */
  users: Int32Array;
  ranks: Int32Array;
}

/** Users of `split` with a target in `which`; by default only users that take part in training. */
export function usersWithTarget(split: Split, which: SplitName, include: 'train' | 'unseen' | 'all' = 'train'): Int32Array {
  const targets = which === 'valid' ? split.valid : split.test;
  const out: number[] = [];
  for (let u = 0; u < split.numUsers; u++) {
    if (targets[u] < 0) continue;
    const h = split.heldOut[u] === 1;
    if (include === 'all' || (include === 'unseen') === h) out.push(u);
  }
  return Int32Array.from(out);
}

/** Targets and the CSR of items to exclude, for the given users. */
export function rankingInputs(split: Split, which: SplitName, users: Int32Array) {
  const targetsOf = which === 'valid' ? split.valid : split.test;
  const targets = new Int32Array(users.length);
  const excl: Int32Array[] = [];
  for (let k = 0; k < users.length; k++) {
    const u = users[k];
    if (u < 0 || u >= split.numUsers) throw new RangeError(`users[${k}] = ${u} is not a user of this split (0..${split.numUsers - 1})`);
    const t = targetsOf[u];
    if (t < 0) throw new RangeError(`user ${u} has no ${which} target (too few interactions)`);
    targets[k] = t;
    const tr = split.train[u];
    if (which === 'test' && split.valid[u] >= 0) {
      const e = new Int32Array(tr.length + 1);
      e.set(tr);
      e[tr.length] = split.valid[u];
      excl.push(e);
    } else excl.push(tr);
  }
  return { targets, exclude: toCsr(excl) };
}

export async function evaluateVectors(o: EvaluateOptions): Promise<Evaluation> {
  const { split, dim } = o;
  const users = o.users ?? usersWithTarget(split, o.which);
  if (o.itemVectors.length !== split.numItems * dim) {
    throw new RangeError(`itemVectors has ${o.itemVectors.length} values; expected numItems * dim = ${split.numItems} * ${dim}`);
  }
  let queries: Float32Array;
  if ((o.queryRows ?? 'all') === 'all') {
    if (o.userVectors.length !== split.numUsers * dim) {
      throw new RangeError(`userVectors has ${o.userVectors.length} values; expected numUsers * dim = ${split.numUsers} * ${dim}`);
    }
    queries = new Float32Array(users.length * dim);
    for (let k = 0; k < users.length; k++) queries.set(o.userVectors.subarray(users[k] * dim, (users[k] + 1) * dim), k * dim);
  } else {
    if (o.userVectors.length !== users.length * dim) throw new RangeError(`userVectors has ${o.userVectors.length} values; expected users.length * dim`);
    queries = o.userVectors;
  }
  const { targets, exclude } = rankingInputs(split, o.which, users);
  const ranks = await rankTargets({ users: queries, items: o.itemVectors, dim, targets, exclude, similarity: o.similarity ?? 'dot', backend: o.backend });
  return { metrics: metricsFromRanks(ranks, o.ks ?? DEFAULT_KS), users, ranks };
}
