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
import { cfFoldInNative, createCfFoldInContextNative, type NativeCfFoldInContext } from './native.js';

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

/** Throws a RangeError naming the history and the item when an id is not an item of the model. */
function checkHistories(numItems: number, histories: ArrayLike<number>[], allowEmpty: boolean): void {
  if (!Array.isArray(histories)) throw new TypeError('histories must be an array of item-id lists');
  histories.forEach((h, b) => {
    if (h === null || typeof h !== 'object' || typeof h.length !== 'number') throw new TypeError(`history ${b}: must be a list of item ids`);
    if (!allowEmpty && h.length === 0) throw new RangeError(`history ${b}: is empty (a new user needs at least one item)`);
    for (let k = 0; k < h.length; k++) {
      const i = h[k];
      if (!Number.isInteger(i) || i < 0 || i >= numItems) throw new RangeError(`history ${b}: item ${i} is not an item of the model (0..${numItems - 1})`);
    }
  });
}

/** Users then items: the (N * dim) ego matrix the native side reads. */
/** The trained model as the native fold-in takes it: graph, stacked ego embeddings (users then items), shapes. */
function nativeModel(m: FoldInModel) {
  return { numUsers: m.numUsers, numItems: m.numItems, trainPtr: m.trainPtr, trainIdx: m.trainIdx, ego: egoOf(m), dim: m.dim, layers: m.layers };
}

function egoOf(m: FoldInModel): Float32Array {
  if (m.userEgo.length !== m.numUsers * m.dim) throw new RangeError(`userEgo.length (${m.userEgo.length}) must be numUsers * dim (${m.numUsers * m.dim})`);
  if (m.itemEgo.length !== m.numItems * m.dim) throw new RangeError(`itemEgo.length (${m.itemEgo.length}) must be numItems * dim (${m.numItems * m.dim})`);
  const ego = new Float32Array((m.numUsers + m.numItems) * m.dim);
  ego.set(m.userEgo, 0);
  ego.set(m.itemEgo, m.numUsers * m.dim);
  return ego;
}

function nativeOptions(config: Partial<FoldInConfig>) {
  const c = { ...FOLD_IN_DEFAULTS, ...config };
  return { steps: c.steps, negatives: c.negatives, lr: c.lr, lambda: c.l2, seed: c.seed };
}

/**
 * Vectors for new users from their item histories (item ids of the model). Returns (B * dim)
 * final vectors and ego vectors, one row per history (an empty history gives zero vectors).
 * Runs off the event loop. One-shot: it propagates the whole graph on every call; to fold in
 * many users of one model, create a FoldInContext once (same results, bit for bit).
 */
export async function foldInUsers(
  m: FoldInModel,
  histories: ArrayLike<number>[],
  config: Partial<FoldInConfig> = {},
): Promise<{ final: Float32Array; ego: Float32Array }> {
  checkHistories(m.numItems, histories, true);
  const hist = toCsr(histories.map((h) => Int32Array.from(h)));
  return cfFoldInNative({
    ...nativeModel(m),
    historyPtr: hist.ptr,
    historyIdx: hist.idx,
    ...nativeOptions(config),
  });
}

/**
 * Fold-in for a model that does not change (serving): the graph is built and propagated once, at
 * create(), and only what fold-in reads is kept (item rows of the layer outputs, final item
 * vectors, item degrees). foldIn() then costs only the per-user fit. Results equal foldInUsers'
 * for the same model, histories and config, bit for bit (the native one-shot builds the same
 * context). dispose() frees the native memory; later calls throw ERR_TOKENREC_DISPOSED.
 */
export class FoldInContext {
  private native: NativeCfFoldInContext | null;

  private constructor(
    native: NativeCfFoldInContext,
    readonly numItems: number,
    readonly dim: number,
  ) {
    this.native = native;
  }

  /** Builds the context off the event loop (one propagation of the training graph). */
  static async create(m: FoldInModel): Promise<FoldInContext> {
    const native = await createCfFoldInContextNative(nativeModel(m));
    return new FoldInContext(native, m.numItems, m.dim);
  }

  /**
   * As foldInUsers, for this context's model: (B * dim) final and ego vectors, row b seeded by
   * (config.seed, b). Every history must name at least one item.
   */
  async foldIn(histories: ArrayLike<number>[], config: Partial<FoldInConfig> = {}): Promise<{ final: Float32Array; ego: Float32Array }> {
    const native = this.live('foldIn');
    checkHistories(this.numItems, histories, false);
    const hist = toCsr(histories.map((h) => Int32Array.from(h)));
    return native.foldIn(hist.ptr, hist.idx, nativeOptions(config));
  }

  get disposed(): boolean {
    return this.native === null;
  }

  /** Frees the native context (a running foldIn finishes first, on its own reference). Idempotent. */
  dispose(): void {
    this.native?.dispose();
    this.native = null;
  }

  private live(what: string): NativeCfFoldInContext {
    if (!this.native) throw Object.assign(new Error(`FoldInContext.${what}: the context was disposed`), { code: 'ERR_TOKENREC_DISPOSED' });
    return this.native;
  }
}

/** The full-retrain path: the same split with the unseen users made ordinary training users. */
export function withUsersIncluded(split: Split): Split {
  const heldOut = new Uint8Array(split.numUsers);
  const trainUsers = Int32Array.from({ length: split.numUsers }, (_, u) => u);
  return { ...split, heldOut, trainUsers, unseenUsers: new Int32Array(0), report: { ...split.report, unseen: 0, unseenFraction: 0 } };
}
