// LLM4Rec samples without leakage (PAPER.md §4, defect 4):
//   train: target = one of the user's training items; prompt = the user's other training
//          items, shuffled, subsampled to the cap when longer;
//   valid: prompt = all training items (capped) -> the validation item;
//   test:  prompt = training + validation items (capped) -> the test item.
// The items of the prompt's source set are the ones excluded from the ranking at evaluation.
import type { Split } from '../data/types.js';

export interface Sample {
  user: number;
  /** Items shown in the prompt, in the order shown. */
  history: Int32Array;
  /** Positive item. */
  target: number;
}

/** A uniformly random subset of `items` of size min(cap, n), in random order. */
export function shuffledSubset(items: ArrayLike<number>, cap: number, rand: () => number, skip = -1): Int32Array {
  const a: number[] = [];
  for (let i = 0; i < items.length; i++) if (items[i] !== skip) a.push(items[i]);
  const n = Math.min(cap, a.length);
  // Partial Fisher–Yates: the first n slots are a uniform random sample, in random order.
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (a.length - i));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return Int32Array.from(a.slice(0, n));
}

/** One training sample per call: a random training item of `user` as target. */
export function trainingSample(split: Split, user: number, cap: number, rand: () => number): Sample {
  const tr = split.train[user];
  if (tr.length === 0) throw new RangeError(`user ${user} has no training items`);
  const k = Math.floor(rand() * tr.length);
  const target = tr[k];
  // Remove exactly one occurrence (the target) from the history.
  const rest = new Int32Array(tr.length - 1);
  rest.set(tr.subarray(0, k));
  rest.set(tr.subarray(k + 1), k);
  return { user, target, history: shuffledSubset(rest, cap, rand) };
}

/** The evaluation sample of `user`: its prompt history and target for `which`. */
export function evaluationSample(split: Split, user: number, which: 'valid' | 'test', cap: number, rand: () => number): Sample {
  const target = which === 'valid' ? split.valid[user] : split.test[user];
  if (target < 0) throw new RangeError(`user ${user} has no ${which} target`);
  const tr = split.train[user];
  const source = which === 'test' && split.valid[user] >= 0 ? Int32Array.from([...tr, split.valid[user]]) : tr;
  return { user, target, history: shuffledSubset(source, cap, rand) };
}

/** A uniformly random item the user has not interacted with in `known` (train, + valid/test when given). */
export function sampleNegative(numItems: number, known: Set<number>, rand: () => number): number {
  if (known.size >= numItems) throw new RangeError('the user has interacted with every item: no negative exists');
  for (;;) {
    const j = Math.floor(rand() * numItems);
    if (!known.has(j)) return j;
  }
}
