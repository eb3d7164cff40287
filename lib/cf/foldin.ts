// Vectors for users unseen in training, without retraining the item vectors ("fold-in").
//
// Method (native/src/cpu/cf.cc, cf_fold_in_cpu): the new user is attached to the trained graph
// through its items, with the graph's item degrees (+1 for the new edge). Its LightGCN layer
// outputs then follow exactly from the frozen item layers: h^(l) = sum_i (A^{l-1} E)_i /
// sqrt(|S| deg(i)), and its final vector is (e_u + sum_l h^(l)) / (L+1). Only the ego vector e_u
// is unknown; it is fitted by a few Adam steps of BPR (the user's items against uniform unseen
// items, scored with the frozen final item vectors) plus the same L2 term, from e_u = 0.
//
// Why this and not pure aggregation: aggregation alone (e_u = 0) gives a vector built only from
// propagated item information, with the layer-0 term missing, so it is not on the same footing
// as trained users' vectors; and MF (no layers) has nothing to aggregate. Fitting e_u alone is a
// D-dimensional convex-ish problem per user (milliseconds), item vectors and every other user stay
// untouched, and it uses the same loss as training. The full-retrain path is `trainCf` on a split
// where the users are no longer held out (`withUsersIncluded`).
import type { Split } from '../data/types.js';
import { toCsr } from '../data/types.js';
import type { FoldInConfig } from './config.js';
import { FOLD_IN_DEFAULTS } from './config.js';
import { cfFoldInNative } from './native.js';

export interface FoldInModel {
  numUsers: number;
  numItems: number;
  dim: number;
  layers: number;
  /** Ego embeddings of the trained model, (numUsers * dim) and (numItems * dim). */
  userEgo: Float32Array;
  itemEgo: Float32Array;
  /** The training graph (numUsers + 1 offsets): the interactions the model was trained on. */
  trainPtr: Int32Array;
  trainIdx: Int32Array;
}

/**
 * Vectors for new users from their item histories (item ids of the model). Returns (B * dim)
 * final vectors and ego vectors, one row per history. Runs off the event loop.
 */
export async function foldInUsers(
  m: FoldInModel,
  histories: ArrayLike<number>[],
  config: Partial<FoldInConfig> = {},
): Promise<{ final: Float32Array; ego: Float32Array }> {
  const c = { ...FOLD_IN_DEFAULTS, ...config };
  histories.forEach((h, b) => {
    for (let k = 0; k < h.length; k++) {
      const i = h[k];
      if (!Number.isInteger(i) || i < 0 || i >= m.numItems) throw new RangeError(`history ${b}: item ${i} is not an item of the model (0..${m.numItems - 1})`);
    }
  });
  const hist = toCsr(histories.map((h) => Int32Array.from(h)));
  const ego = new Float32Array((m.numUsers + m.numItems) * m.dim);
  ego.set(m.userEgo, 0);
  ego.set(m.itemEgo, m.numUsers * m.dim);
  return cfFoldInNative({
    numUsers: m.numUsers,
    numItems: m.numItems,
    trainPtr: m.trainPtr,
    trainIdx: m.trainIdx,
    ego,
    dim: m.dim,
    layers: m.layers,
    historyPtr: hist.ptr,
    historyIdx: hist.idx,
    steps: c.steps,
    negatives: c.negatives,
    lr: c.lr,
    lambda: c.l2,
    seed: c.seed,
  });
}

/** The full-retrain path: the same split with the unseen users made ordinary training users. */
export function withUsersIncluded(split: Split): Split {
  const heldOut = new Uint8Array(split.numUsers);
  const trainUsers = Int32Array.from({ length: split.numUsers }, (_, u) => u);
  return { ...split, heldOut, trainUsers, unseenUsers: new Int32Array(0), report: { ...split.report, unseen: 0, unseenFraction: 0 } };
}
