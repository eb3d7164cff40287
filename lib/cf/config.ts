// Configuration of the collaborative-filtering stage, with defaults and validation.
import type { Split } from '../data/types.js';
import { toCsr, type Csr } from '../data/types.js';

export type CfModelKind = 'lightgcn' | 'mf';

export interface CfConfig {
  model: CfModelKind;
  /** Embedding dimension d. */
  dim: number;
  /** LightGCN propagation layers (MF: 0). */
  layers: number;
  /** Maximum number of epochs. */
  epochs: number;
  /** BPR triples per Adam step. */
  batchSize: number;
  lr: number;
  /** Weight of the L2 term on the batch's ego embeddings. */
  l2: number;
  /** Ego embeddings start as N(0, initStd^2). */
  initStd: number;
  /** Validation NDCG@20 every evalEvery epochs. */
  evalEvery: number;
  /** Stop after this many evaluations without a better validation NDCG@20. */
  patience: number;
  seed: number;
  /** How vectors for users unseen in training are made (see foldIn.ts). */
  foldIn: FoldInConfig;
}

export interface FoldInConfig {
  /** Adam steps on each new user's ego vector (item vectors frozen). */
  steps: number;
  /** Uniform negatives per positive per step. */
  negatives: number;
  lr: number;
  l2: number;
  seed: number;
}

export const FOLD_IN_DEFAULTS: FoldInConfig = { steps: 200, negatives: 64, lr: 0.05, l2: 1e-4, seed: 0 };

/**
 * Defaults: LightGCN's reference settings (3 layers, d = 64, L2 1e-4, N(0, 0.1^2) initialisation,
 * Adam) except the batch size and learning rate, which are chosen from the data ("auto", 0):
 * every step propagates the whole graph (6 sparse products for 3 layers, forward and backward),
 * so a step costs O(interactions) whatever the batch, and an epoch with a fixed batch costs
 * O(interactions^2). The automatic batch keeps about 64 steps per epoch:
 * B = 2^round(log2(interactions / 64)) clamped to [2048, 16384] (LastFM, Beauty: 2048; ML1M:
 * 16384), with lr = 1e-3 * (B / 2048)^0.75 (between square-root and linear scaling; 1e-3 at the
 * reference's 2048, 4.76e-3 at 16384; a trial on ML1M with 5e-3 at 16384 improved validation
 * NDCG@20 steadily; no sweep was run: see docs/RESULTS.md).
 */
export const CF_DEFAULTS: Omit<CfConfig, 'model'> = {
  dim: 64,
  layers: 3,
  epochs: 300,
  batchSize: 0,
  lr: 0,
  l2: 1e-4,
  initStd: 0.1,
  evalEvery: 5,
  patience: 5,
  seed: 0,
  foldIn: FOLD_IN_DEFAULTS,
};

/** The automatic batch size for a number of training interactions (see CF_DEFAULTS). */
export function autoBatchSize(interactions: number): number {
  const b = 2 ** Math.round(Math.log2(Math.max(1, interactions) / 64));
  return Math.min(16384, Math.max(2048, b));
}

/** The automatic learning rate for a batch size (see CF_DEFAULTS). */
export function autoLearningRate(batchSize: number): number {
  return Number((1e-3 * (batchSize / 2048) ** 0.75).toPrecision(3));
}

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}
function positiveNum(name: string, v: number, allowZero = false): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
}

export type CfConfigInput = Partial<Omit<CfConfig, 'foldIn'>> & { foldIn?: Partial<FoldInConfig> };

/**
 * Fills defaults and validates; MF always has 0 layers. batchSize and lr 0 mean "automatic": they
 * are resolved when `interactions` (training interactions) is given, and stay 0 otherwise.
 */
export function resolveCfConfig(o: CfConfigInput = {}, interactions?: number): CfConfig {
  const model = o.model ?? 'lightgcn';
  if (model !== 'lightgcn' && model !== 'mf') throw new RangeError(`model must be 'lightgcn' or 'mf', got '${model}'`);
  // Only the known keys (callers pass option objects holding more, e.g. a signal or a callback).
  const pick = <T extends object>(defaults: T, given: Partial<T> | undefined): T => {
    const out = { ...defaults };
    for (const k of Object.keys(defaults) as (keyof T)[]) if (given?.[k] !== undefined) out[k] = given[k] as T[keyof T];
    return out;
  };
  const { foldIn: _f, ...base } = CF_DEFAULTS;
  const c: CfConfig = { model, ...pick(base, o), foldIn: pick(FOLD_IN_DEFAULTS, o.foldIn) };
  if (model === 'mf') {
    if (o.layers !== undefined && o.layers !== 0) throw new RangeError(`MF has no propagation layers (got layers = ${o.layers}); use --model lightgcn`);
    c.layers = 0;
  }
  positiveInt('dim', c.dim);
  positiveInt('layers', c.layers, model === 'mf' ? 0 : 1);
  if (c.layers > 16) throw new RangeError(`layers must be at most 16, got ${c.layers}`);
  positiveInt('epochs', c.epochs);
  positiveInt('batchSize', c.batchSize, 0);
  positiveNum('lr', c.lr, true);
  if (interactions !== undefined) {
    if (c.batchSize === 0) c.batchSize = autoBatchSize(interactions);
    if (c.lr === 0) c.lr = autoLearningRate(c.batchSize);
  }
  positiveNum('l2', c.l2, true);
  positiveNum('initStd', c.initStd);
  positiveInt('evalEvery', c.evalEvery);
  positiveInt('patience', c.patience);
  positiveInt('seed', c.seed, 0);
  positiveInt('foldIn.steps', c.foldIn.steps, 0);
  positiveInt('foldIn.negatives', c.foldIn.negatives);
  positiveNum('foldIn.lr', c.foldIn.lr);
  positiveNum('foldIn.l2', c.foldIn.l2, true);
  positiveInt('foldIn.seed', c.foldIn.seed, 0);
  return c;
}

/** The training graph's input: train lists of users that take part in training; held-out users get empty rows. */
export function trainingCsr(split: Split): Csr {
  const rows: Int32Array[] = new Array(split.numUsers);
  const empty = new Int32Array(0);
  for (let u = 0; u < split.numUsers; u++) rows[u] = split.heldOut[u] ? empty : split.train[u];
  return toCsr(rows);
}
