// Seeded synthetic interactions with planted structure, for the demo and for tests that need
// known ground truth: users and items belong to latent groups, a user mostly picks items of its
// own group, and item popularity is skewed (Zipf-like) within and across groups. A model that
// learns the groups beats most-popular; one that does not, does not.
import { seededRandom } from './split.js';
import type { Dataset } from './types.js';

export interface SyntheticOptions {
  users?: number;
  items?: number;
  /** Latent groups shared by users and items. */
  groups?: number;
  /** Interactions per user: uniform in [minPerUser, maxPerUser]. */
  minPerUser?: number;
  maxPerUser?: number;
  /** Probability that an interaction comes from the user's own group (else from any item). */
  inGroup?: number;
  /** Zipf exponent of item popularity (0 = uniform). */
  popularitySkew?: number;
  seed?: number;
}

export interface SyntheticDataset extends Dataset {
  /** Ground truth: group of each user and each item. */
  userGroup: Int32Array;
  itemGroup: Int32Array;
}

function cumulative(weights: number[]): Float64Array {
  const c = new Float64Array(weights.length);
  let s = 0;
  for (let i = 0; i < weights.length; i++) c[i] = s += weights[i];
  return c;
}

function draw(cum: Float64Array, r: number): number {
  const x = r * cum[cum.length - 1];
  let lo = 0, hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function syntheticDataset(o: SyntheticOptions = {}): SyntheticDataset {
  const U = o.users ?? 600;
  const I = o.items ?? 400;
  const G = o.groups ?? 8;
  const minN = o.minPerUser ?? 8;
  const maxN = o.maxPerUser ?? 30;
  const inGroup = o.inGroup ?? 0.85;
  const skew = o.popularitySkew ?? 0.8;
  const seed = o.seed ?? 1;
  for (const [k, v] of Object.entries({ users: U, items: I, groups: G, minPerUser: minN, maxPerUser: maxN })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`synthetic: ${k} must be a positive integer, got ${v}`);
  }
  if (maxN < minN) throw new RangeError(`synthetic: maxPerUser (${maxN}) < minPerUser (${minN})`);
  if (G > I) throw new RangeError(`synthetic: more groups (${G}) than items (${I})`);
  if (!(inGroup >= 0 && inGroup <= 1)) throw new RangeError(`synthetic: inGroup must be in [0, 1], got ${inGroup}`);
  const rand = seededRandom(seed);
  const itemGroup = Int32Array.from({ length: I }, (_, i) => i % G);
  // A random permutation makes popularity rank independent of the item id.
  const perm = Array.from({ length: I }, (_, i) => i);
  for (let i = I - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const weight = new Array<number>(I);
  for (let r = 0; r < I; r++) weight[perm[r]] = 1 / Math.pow(r + 1, skew);
  const all = cumulative(weight);
  const members: number[][] = Array.from({ length: G }, () => []);
  for (let i = 0; i < I; i++) members[itemGroup[i]].push(i);
  const groupCum = members.map((m) => cumulative(m.map((i) => weight[i])));
  const userGroup = new Int32Array(U);
  const sequences: Int32Array[] = [];
  for (let u = 0; u < U; u++) {
    const g = Math.floor(rand() * G);
    userGroup[u] = g;
    const n = Math.min(I, minN + Math.floor(rand() * (maxN - minN + 1)));
    const seen = new Set<number>();
    const seq: number[] = [];
    let guard = 0;
    while (seq.length < n && guard++ < n * 50) {
      const i = rand() < inGroup ? members[g][draw(groupCum[g], rand())] : draw(all, rand());
      if (seen.has(i)) continue;
      seen.add(i);
      seq.push(i);
    }
    sequences.push(Int32Array.from(seq));
  }
  return {
    name: `synthetic-u${U}-i${I}-g${G}-s${seed}`,
    users: Array.from({ length: U }, (_, u) => `u${u}`),
    items: Array.from({ length: I }, (_, i) => `i${i}`),
    sequences,
    duplicatesDropped: 0,
    format: 'openp5',
    userGroup,
    itemGroup,
  };
}

/** Writes a synthetic dataset as an OpenP5 user_sequence file body. */
export function toOpenP5Text(ds: Dataset): string {
  return ds.sequences.map((s, u) => [ds.users[u], ...Array.from(s, (i) => ds.items[i])].join(' ')).join('\n') + '\n';
}
