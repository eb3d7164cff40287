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

export const FOLD_IN_DEFAULTS: FoldInConfig = { steps: 50, negatives: 64, lr: 0.05, l2: 1e-4, seed: 0 };

/**
 * Defaults: LightGCN's reference settings (3 layers, d = 64, lr 1e-3, L2 1e-4, N(0, 0.1^2)
 * initialisation), except the batch: 4096 triples instead of 2048, with the learning rate
 * raised to 2e-3 to keep the step count's effect. Each step propagates the whole graph
 * (6 sparse products for 3 layers, forward and backward), so steps, not samples, set the cost;
 * doubling the batch halves the time per epoch on 2 cores (measured in bench/README.md).
 */
export const CF_DEFAULTS: Omit<CfConfig, 'model'> = {
  dim: 64,
  layers: 3,
  epochs: 300,
  batchSize: 4096,
  lr: 2e-3,
  l2: 1e-4,
  initStd: 0.1,
  evalEvery: 5,
  patience: 5,
  seed: 0,
  foldIn: FOLD_IN_DEFAULTS,
};

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
}
function positiveNum(name: string, v: number, allowZero = false): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
}

export type CfConfigInput = Partial<Omit<CfConfig, 'foldIn'>> & { foldIn?: Partial<FoldInConfig> };

/** Fills defaults and validates; MF always has 0 layers. */
export function resolveCfConfig(o: CfConfigInput = {}): CfConfig {
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
  positiveInt('batchSize', c.batchSize);
  positiveNum('lr', c.lr);
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
