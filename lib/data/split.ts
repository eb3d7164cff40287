// Leave-one-out split (PAPER.md §2) and the unseen-user hold-out (PAPER.md §1.5).
import type { Dataset, Split } from './types.js';

export interface SplitOptions {
  /** Fraction of users, the least active first, held out of every training stage (0..0.5). Default 0. */
  unseenFraction?: number;
  /** Seed for breaking ties between equally active users when choosing unseen users. Default 0. */
  seed?: number;
}

/** A small seeded generator (mulberry32) for reproducible choices across the library. */
export function seededRandom(seed: number): () => number {
  let a = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Per user sequence s (oldest first): test = last, valid = second to last, train = the rest.
 * Users too short for that are kept and reported, never silently dropped:
 *   2 interactions: train = [first], no validation target (valid = -1), test = last;
 *   1 interaction:  train only (valid = test = -1);
 *   0 interactions: nothing (counted as empty).
 * With unseenFraction > 0, the ceil(fraction * users-with-a-test-target) least active users
 * (fewest interactions; ties broken by a seeded shuffle) are marked heldOut: they keep their
 * targets, and their train list is the history they bring as new users.
 */
export function splitLeaveOneOut(ds: Dataset, opts: SplitOptions = {}): Split {
  const unseenFraction = opts.unseenFraction ?? 0;
  const seed = opts.seed ?? 0;
  if (!(unseenFraction >= 0 && unseenFraction <= 0.5)) {
    throw new RangeError(`unseenFraction must be in [0, 0.5], got ${unseenFraction}`);
  }
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const U = ds.sequences.length;
  const train: Int32Array[] = [];
  const valid = new Int32Array(U).fill(-1);
  const test = new Int32Array(U).fill(-1);
  const report = { users: U, full: 0, noValid: 0, trainOnly: 0, empty: 0, unseen: 0, unseenFraction, seed };
  for (let u = 0; u < U; u++) {
    const s = ds.sequences[u];
    if (s.length >= 3) {
      train.push(s.slice(0, s.length - 2));
      valid[u] = s[s.length - 2];
      test[u] = s[s.length - 1];
      report.full++;
    } else if (s.length === 2) {
      train.push(s.slice(0, 1));
      test[u] = s[1];
      report.noValid++;
    } else {
      train.push(s.slice());
      if (s.length === 1) report.trainOnly++;
      else report.empty++;
    }
  }
  const heldOut = new Uint8Array(U);
  if (unseenFraction > 0) {
    const candidates: number[] = [];
    for (let u = 0; u < U; u++) if (test[u] >= 0) candidates.push(u);
    const rand = seededRandom(seed);
    const key = new Float64Array(U);
    for (const u of candidates) key[u] = rand();
    candidates.sort((a, b) => ds.sequences[a].length - ds.sequences[b].length || key[a] - key[b]);
    const n = Math.ceil(unseenFraction * candidates.length);
    for (let k = 0; k < n; k++) heldOut[candidates[k]] = 1;
    report.unseen = n;
  }
  const trainUsers: number[] = [];
  const unseenUsers: number[] = [];
  for (let u = 0; u < U; u++) (heldOut[u] ? unseenUsers : trainUsers).push(u);
  return {
    numUsers: U,
    numItems: ds.items.length,
    train,
    valid,
    test,
    heldOut,
    trainUsers: Int32Array.from(trainUsers),
    unseenUsers: Int32Array.from(unseenUsers),
    report,
  };
}

/** Number of training interactions of users that take part in training. */
export function trainingInteractions(split: Split): number {
  let n = 0;
  for (const u of split.trainUsers) n += split.train[u].length;
  return n;
}

/** Items seen in training (by users that take part in training). */
export function trainingItemCounts(split: Split): Int32Array {
  const c = new Int32Array(split.numItems);
  for (const u of split.trainUsers) for (const i of split.train[u]) c[i]++;
  return c;
}
