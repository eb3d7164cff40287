// Typed access to the native CF trainer (native/binding/cf_binding.cc).
import { nativeFunction } from '../native/addon.js';

export interface CfBatchStats {
  batches: number;
  samples: number;
  /** Sums over the batches of each batch's mean BPR loss / mean L2 term (before the weight). */
  bprSum: number;
  regSum: number;
}

export interface CfState {
  /** (N * dim) ego embeddings, users first then items; Adam's moments of the same shape. */
  ego: Float32Array;
  adamM: Float32Array;
  adamV: Float32Array;
  /** Adam step count (for bias correction). */
  step: number;
}

/** Native trainer: owns the graph, embeddings and Adam state. One call at a time; dispose() frees it. */
export interface NativeCfTrainer {
  beginEpoch(epoch: number): Promise<number>;
  trainBatches(n: number): Promise<CfBatchStats>;
  /** (N * dim) final vectors F = propagate(E), users first then items. */
  finalVectors(): Promise<Float32Array>;
  getState(): CfState;
  setState(s: CfState): void;
  dispose(): void;
  readonly numUsers: number;
  readonly numItems: number;
  readonly dim: number;
  readonly layers: number;
  readonly interactions: number;
  readonly disposed: boolean;
}

export interface TrainCsrArgs {
  numUsers: number;
  numItems: number;
  /** (numUsers + 1) offsets and the items of each user (users outside training have empty rows). */
  trainPtr: Int32Array;
  trainIdx: Int32Array;
}

export type CreateCfTrainerFn = (
  o: TrainCsrArgs & {
    dim: number;
    layers: number;
    batchSize: number;
    lambda: number;
    lr: number;
    initStd: number;
    seed: number;
    backend: 'cpu' | 'cuda';
  },
) => Promise<NativeCfTrainer>;

export type CfFoldInFn = (
  o: TrainCsrArgs & {
    ego: Float32Array;
    dim: number;
    layers: number;
    historyPtr: Int32Array;
    historyIdx: Int32Array;
    steps: number;
    negatives: number;
    lr: number;
    lambda: number;
    seed: number;
  },
) => Promise<{ final: Float32Array; ego: Float32Array }>;

/** Options of one fold-in call (FoldInConfig with the native names). */
export interface NativeFoldInOptions {
  steps: number;
  negatives: number;
  lr: number;
  lambda: number;
  seed: number;
}

/**
 * Native fold-in context: the item rows of the propagated layers and the final item vectors of a
 * trained model, computed once. Immutable (calls may overlap); dispose() frees it.
 */
export interface NativeCfFoldInContext {
  /** historyPtr (B + 1) and historyIdx: the new users' items. Returns (B * dim) vectors. */
  foldIn(historyPtr: Int32Array, historyIdx: Int32Array, o: NativeFoldInOptions): Promise<{ final: Float32Array; ego: Float32Array }>;
  dispose(): void;
  readonly numUsers: number;
  readonly numItems: number;
  readonly dim: number;
  readonly layers: number;
  readonly disposed: boolean;
}

export type CreateCfFoldInContextFn = (
  o: TrainCsrArgs & { ego: Float32Array; dim: number; layers: number },
) => Promise<NativeCfFoldInContext>;

export const createCfTrainer = async (o: Parameters<CreateCfTrainerFn>[0]) => nativeFunction<CreateCfTrainerFn>('createCfTrainer')(o);
export const cfFoldInNative = async (o: Parameters<CfFoldInFn>[0]) => nativeFunction<CfFoldInFn>('cfFoldIn')(o);
export const createCfFoldInContextNative = async (o: Parameters<CreateCfFoldInContextFn>[0]) =>
  nativeFunction<CreateCfFoldInContextFn>('createCfFoldInContext')(o);
