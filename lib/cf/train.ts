// Training loop of the collaborative-filtering stage: TypeScript orchestrates epochs; the native
// trainer (native/src/cpu/cf.cc) samples, propagates, computes BPR and steps Adam.
//
// Seeded; validation NDCG@20 every `evalEvery` epochs with early stopping after `patience`
// evaluations without improvement; the best epoch's vectors are kept. A checkpoint written
// atomically after each evaluation lets a killed run resume where it was (same data and config).
import { existsSync } from 'node:fs';
import type { Split } from '../data/types.js';
import { trainingInteractions } from '../data/split.js';
import { evaluateVectors, usersWithTarget, type SplitName } from '../eval/evaluate.js';
import type { Metrics } from '../eval/metrics.js';
import { splitFingerprint } from '../io/manifest.js';
import { f32, readSafetensors, requireFinite, expectTensor, writeSafetensors } from '../io/safetensors.js';
import { resolveBackend, type Backend } from '../native/addon.js';
import { resolveCfConfig, trainingCsr, type CfConfig, type CfConfigInput } from './config.js';
import { foldInUsers } from './foldin.js';
import { createCfTrainer, type NativeCfTrainer } from './native.js';

export interface CfEpochRecord {
  epoch: number;
  /** Mean BPR loss over the epoch's batches, and mean L2 term (before its weight). */
  loss: number;
  reg: number;
  seconds: number;
  /** Validation NDCG@20 when this epoch was evaluated. */
  validNdcg20?: number;
}

export type CfProgressEvent =
  | { phase: 'train'; epoch: number; epochs: number; batch: number; batches: number; loss: number }
  | { phase: 'epoch'; epoch: number; epochs: number; record: CfEpochRecord }
  | { phase: 'eval'; epoch: number; epochs: number; validNdcg20: number; bestEpoch: number; bestNdcg20: number; badEvals: number };

export interface TrainCfOptions extends CfConfigInput {
  backend?: Backend;
  onProgress?: (e: CfProgressEvent) => void;
  /** Cancels between batches; the Promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Checkpoint file. When it exists, training resumes from it (it must match the data and config). */
  checkpoint?: string;
}

/** Vectors of the CF stage: rows indexed by user id / item id, row-major (n, dim). */
export interface CfVectors {
  numUsers: number;
  numItems: number;
  dim: number;
  /** Final vectors (LightGCN: mean of the layer outputs; MF: the embeddings). */
  userVectors: Float32Array;
  itemVectors: Float32Array;
  /** Ego (layer-0) embeddings. */
  userEgo: Float32Array;
  itemEgo: Float32Array;
  /** Per user: 0 = trained in the graph, 1 = folded in (unseen in training). */
  userSource: Int32Array;
}

export interface CfTrainResult extends CfVectors {
  config: CfConfig;
  /** Epoch (1-based count of epochs trained) whose vectors were kept; 0 if none was evaluated. */
  bestEpoch: number;
  epochsRun: number;
  stoppedEarly: boolean;
  /** Epochs already done when this call started (0 for a fresh run). */
  resumedFromEpoch: number;
  history: CfEpochRecord[];
  /** Mean training seconds per epoch (evaluation excluded) over the epochs this call ran. */
  secondsPerEpoch: number;
  /** Validation metrics of the kept vectors (users that take part in training). */
  valid?: Metrics;
  interactions: number;
}

const CHECKPOINT_VERSION = 1;

interface CheckpointMeta {
  version: number;
  fingerprint: string;
  config: CfConfig;
  epoch: number;
  step: number;
  bestEpoch: number;
  bestNdcg20: number;
  badEvals: number;
  stopped: boolean;
  history: CfEpochRecord[];
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error('training was aborted'), { name: 'AbortError' });
}

export async function trainCf(split: Split, opts: TrainCfOptions = {}): Promise<CfTrainResult> {
  const interactions = trainingInteractions(split);
  const config = resolveCfConfig(opts, interactions);
  if (split.numUsers === 0 || split.numItems === 0 || interactions === 0) {
    throw new Error(
      `the training split is empty (${split.numUsers} users, ${split.numItems} items, ${interactions} training interactions): ` +
        'nothing to train on; check the data file and the --unseen fraction',
    );
  }
  const backend = resolveBackend(opts.backend ?? 'cpu');
  const csr = trainingCsr(split);
  const fingerprint = splitFingerprint(split);
  const D = config.dim;
  const U = split.numUsers;
  const N = U + split.numItems;
  const validUsers = usersWithTarget(split, 'valid');

  const trainer: NativeCfTrainer = await createCfTrainer({
    numUsers: split.numUsers,
    numItems: split.numItems,
    trainPtr: csr.ptr,
    trainIdx: csr.idx,
    dim: D,
    layers: config.layers,
    batchSize: config.batchSize,
    lambda: config.l2,
    lr: config.lr,
    initStd: config.initStd,
    seed: config.seed,
    backend,
  });
  try {
    let meta: CheckpointMeta = {
      version: CHECKPOINT_VERSION,
      fingerprint,
      config,
      epoch: 0,
      step: 0,
      bestEpoch: 0,
      bestNdcg20: -1,
      badEvals: 0,
      stopped: false,
      history: [],
    };
    let bestEgo: Float32Array | undefined;
    let bestFinal: Float32Array | undefined;
    if (opts.checkpoint && existsSync(opts.checkpoint)) {
      const r = loadCheckpoint(opts.checkpoint, fingerprint, config, N * D);
      trainer.setState(r.state);
      meta = r.meta;
      if (r.meta.bestEpoch > 0) {
        bestEgo = r.bestEgo;
        bestFinal = r.bestFinal;
      }
    }
    const resumedFromEpoch = meta.epoch;
    let trainSeconds = 0;
    let epochsThisCall = 0;

    const evaluateNow = async (epoch: number) => {
      const final = await trainer.finalVectors();
      let ndcg = 0;
      if (validUsers.length > 0) {
        const ev = await evaluateVectors({
          split,
          which: 'valid',
          users: validUsers,
          userVectors: final.subarray(0, U * D),
          itemVectors: final.subarray(U * D),
          dim: D,
          ks: [20],
          backend,
        });
        ndcg = ev.metrics.ndcg[20];
      }
      meta.history[meta.history.length - 1].validNdcg20 = ndcg;
      // Without validation users every evaluation "improves": the last epoch is kept.
      if (ndcg > meta.bestNdcg20 || validUsers.length === 0) {
        meta.bestNdcg20 = ndcg;
        meta.bestEpoch = epoch;
        meta.badEvals = 0;
        bestFinal = final;
        bestEgo = trainer.getState().ego;
      } else meta.badEvals++;
      if (meta.badEvals >= config.patience || epoch >= config.epochs) meta.stopped = true;
      opts.onProgress?.({ phase: 'eval', epoch, epochs: config.epochs, validNdcg20: ndcg, bestEpoch: meta.bestEpoch, bestNdcg20: meta.bestNdcg20, badEvals: meta.badEvals });
      if (opts.checkpoint) saveCheckpoint(opts.checkpoint, trainer, meta, bestEgo!, bestFinal!);
    };

    while (!meta.stopped && meta.epoch < config.epochs) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const epoch = meta.epoch + 1; // 1-based count of epochs done after this one
      const t0 = performance.now();
      const batches = await trainer.beginEpoch(meta.epoch);
      // About 20 progress updates (and abort checks) per epoch.
      const chunk = Math.max(1, Math.ceil(batches / 20));
      let done = 0, bpr = 0, reg = 0;
      while (done < batches) {
        if (opts.signal?.aborted) throw abortError(opts.signal);
        const st = await trainer.trainBatches(Math.min(chunk, batches - done));
        done += st.batches;
        bpr += st.bprSum;
        reg += st.regSum;
        opts.onProgress?.({ phase: 'train', epoch, epochs: config.epochs, batch: done, batches, loss: bpr / done });
      }
      const seconds = (performance.now() - t0) / 1000;
      trainSeconds += seconds;
      epochsThisCall++;
      const record: CfEpochRecord = { epoch, loss: bpr / batches, reg: reg / batches, seconds };
      meta.history.push(record);
      meta.epoch = epoch;
      meta.step = trainer.getState().step;
      opts.onProgress?.({ phase: 'epoch', epoch, epochs: config.epochs, record });
      if (epoch % config.evalEvery === 0 || epoch === config.epochs) await evaluateNow(epoch);
    }
    if (!bestEgo || !bestFinal) {
      // Resumed from a finished checkpoint without a kept epoch cannot happen; a run with zero
      // epochs neither. Guard anyway with the current state.
      bestFinal = await trainer.finalVectors();
      bestEgo = trainer.getState().ego;
    }

    const vectors: CfVectors = {
      numUsers: U,
      numItems: split.numItems,
      dim: D,
      userVectors: bestFinal.slice(0, U * D),
      itemVectors: bestFinal.slice(U * D),
      userEgo: bestEgo.slice(0, U * D),
      itemEgo: bestEgo.slice(U * D),
      userSource: new Int32Array(U),
    };
    // Users unseen in training get their vectors by fold-in from the history they bring.
    if (split.unseenUsers.length > 0) {
      const f = await foldInUsers(
        { ...vectors, layers: config.layers, trainPtr: csr.ptr, trainIdx: csr.idx },
        Array.from(split.unseenUsers, (u) => split.train[u]),
        config.foldIn,
      );
      split.unseenUsers.forEach((u, k) => {
        vectors.userVectors.set(f.final.subarray(k * D, (k + 1) * D), u * D);
        vectors.userEgo.set(f.ego.subarray(k * D, (k + 1) * D), u * D);
        vectors.userSource[u] = 1;
      });
    }
    const valid = validUsers.length
      ? (await evaluateVectors({ split, which: 'valid', users: validUsers, userVectors: vectors.userVectors, itemVectors: vectors.itemVectors, dim: D, backend })).metrics
      : undefined;
    return {
      ...vectors,
      config,
      bestEpoch: meta.bestEpoch,
      epochsRun: meta.epoch,
      stoppedEarly: meta.epoch < config.epochs,
      resumedFromEpoch,
      history: meta.history,
      secondsPerEpoch: epochsThisCall ? trainSeconds / epochsThisCall : 0,
      valid,
      interactions,
    };
  } finally {
    trainer.dispose();
  }
}

/** Metrics of CF vectors on a split: users that took part in training, and unseen users (fold-in vectors) apart. */
export async function evaluateCf(
  v: CfVectors,
  split: Split,
  which: SplitName,
  opts: { backend?: Backend; ks?: readonly number[] } = {},
): Promise<{ seen: Metrics; unseen?: Metrics }> {
  if (v.numUsers !== split.numUsers || v.numItems !== split.numItems) {
    throw new Error(`the vectors are for ${v.numUsers} users / ${v.numItems} items but the data has ${split.numUsers} / ${split.numItems}`);
  }
  const run = async (users: Int32Array) =>
    (await evaluateVectors({ split, which, users, userVectors: v.userVectors, itemVectors: v.itemVectors, dim: v.dim, ks: opts.ks, backend: opts.backend })).metrics;
  const seen = await run(usersWithTarget(split, which, 'train'));
  const unseenUsers = usersWithTarget(split, which, 'unseen');
  return { seen, unseen: unseenUsers.length ? await run(unseenUsers) : undefined };
}

// ---- checkpoints ------------------------------------------------------------------------------

function saveCheckpoint(path: string, trainer: NativeCfTrainer, meta: CheckpointMeta, bestEgo: Float32Array, bestFinal: Float32Array): void {
  const s = trainer.getState();
  const n = s.ego.length;
  const D = trainer.dim;
  writeSafetensors(
    path,
    {
      ego: f32([n / D, D], s.ego),
      adam_m: f32([n / D, D], s.adamM),
      adam_v: f32([n / D, D], s.adamV),
      best_ego: f32([n / D, D], bestEgo),
      best_final: f32([n / D, D], bestFinal),
    },
    { tokenrec_cf_checkpoint: JSON.stringify({ ...meta, step: s.step }) },
  );
}

function loadCheckpoint(path: string, fingerprint: string, config: CfConfig, n: number) {
  const { tensors, metadata } = readSafetensors(path);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(metadata.tokenrec_cf_checkpoint ?? '') as CheckpointMeta;
  } catch {
    throw new Error(`${path}: not a tokenrec CF checkpoint (no readable tokenrec_cf_checkpoint metadata)`);
  }
  if (meta.version !== CHECKPOINT_VERSION) throw new Error(`${path}: checkpoint version ${meta.version} is not supported`);
  if (meta.fingerprint !== fingerprint) {
    throw new Error(`${path}: this checkpoint was written for another dataset or split (fingerprint ${meta.fingerprint.slice(0, 12)}…, this data ${fingerprint.slice(0, 12)}…); delete it or use another output directory`);
  }
  if (JSON.stringify(meta.config) !== JSON.stringify(config)) {
    throw new Error(`${path}: this checkpoint was written with another configuration (${JSON.stringify(meta.config)}); delete it to start over, or train with the same options`);
  }
  const D = config.dim;
  const get = (name: string) => {
    const t = expectTensor(tensors, name, [n / D, D], path);
    requireFinite(t, name, path);
    return t.data as Float32Array;
  };
  const state = { ego: get('ego'), adamM: get('adam_m'), adamV: get('adam_v'), step: meta.step };
  return { meta, state, bestEgo: get('best_ego'), bestFinal: get('best_final') };
}
