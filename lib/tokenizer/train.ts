// Training of one MQ-Tokenizer on a set of vectors: held-out split, k-means initialisation of the
// codebooks, epochs of native training steps (mask -> K encoders -> VQ -> straight-through ->
// decoder -> AdamW, one native call per batch), re-seeding of codewords left unused, and the
// statistics of the final codes.
import { seededRandom } from '../data/split.js';
import { resolveTokenizerConfig, type TokenizerConfigInput } from './config.js';
import { checkVectors, Tokenizer } from './model.js';
import { kmeans } from './vq.js';
import { assignUniqueCodes, tokenizerDistances, type AssignmentStats } from './assign.js';
import { codebookStats, collisionStats, disambiguate, type CodebookStats, type CollisionStats } from './stats.js';

export interface TokenizerEpochRecord {
  epoch: number;
  loss: number;
  recon: number;
  codebook: number;
  commitment: number;
  /** Cross-encoder decorrelation term (0 unless config.decorrelation > 0). */
  decorrelation: number;
  /** Fraction of each codebook's codewords chosen at least once during the epoch (masked inputs). */
  utilisation: number[];
  /** The same for the clean (unmasked) codes of the training ids after the epoch (when re-seeding is on). */
  cleanUtilisation?: number[];
  /** Codewords re-seeded after the epoch. */
  reseeded: number;
  seconds: number;
}

export type TokenizerProgressEvent =
  | { phase: 'init'; message: string }
  | { phase: 'batch'; epoch: number; epochs: number; batch: number; batches: number; loss: number }
  | ({ phase: 'epoch'; epochs: number } & TokenizerEpochRecord);

export interface TrainTokenizerOptions {
  onProgress?: (e: TokenizerProgressEvent) => void;
  signal?: AbortSignal;
  /**
   * Per id, 1 = never train on it (e.g. users kept unseen for the unseen-user experiment); such ids
   * are only encoded by the frozen tokenizer at the end, and their reconstruction is reported apart.
   */
  exclude?: ArrayLike<number>;
}

export interface ReconstructionStats {
  ids: number;
  /** Mean squared error per element. */
  mse: number;
  /** Sum of squared errors over the total variance of the vectors (0 = perfect, 1 = as bad as the mean). */
  relative: number;
}

export interface TokenizerStats {
  ids: number;
  dim: number;
  codebooks: CodebookStats[];
  /** Collisions of the code table written out (after the collision-free assignment when config.uniqueCodes). */
  collisions: CollisionStats;
  /** Collisions of the nearest-codeword codes (what the trained tokenizer itself gives). */
  nearestCollisions: CollisionStats;
  /** When config.uniqueCodes: the ids moved to another tuple and what it cost. */
  assignment?: AssignmentStats;
  reconTrain: ReconstructionStats;
  /** Ids left out of training (config.holdout), encoded by the frozen tokenizer like unseen ids. */
  reconHeldOut?: ReconstructionStats;
  /** Ids excluded by the caller (options.exclude), encoded by the frozen tokenizer. */
  reconExcluded?: ReconstructionStats;
  /** When config.disambiguate: the range of the extra code, [0, extraCodeRange). */
  extraCodeRange?: number;
  epochs: number;
  reseededTotal: number;
  trainSeconds: number;
  secondsPerEpoch: number;
  finalEpoch?: TokenizerEpochRecord;
}

export interface TrainedTokenizer {
  tokenizer: Tokenizer;
  /** Codes of every id: (n * K), or (n * (K + 1)) with disambiguation. */
  codes: Int32Array;
  /** Codes per id: K, or K + 1 with disambiguation. */
  codeWidth: number;
  /** The ids held out of training (ascending). */
  heldOut: Int32Array;
  stats: TokenizerStats;
  history: TokenizerEpochRecord[];
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : Object.assign(new Error('tokenizer training was aborted'), { name: 'AbortError' });
  }
}

function shuffle(a: Int32Array, rand: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

function gatherRows(vectors: Float32Array, dim: number, ids: ArrayLike<number>, out?: Float32Array): Float32Array {
  const x = out ?? new Float32Array(ids.length * dim);
  for (let i = 0; i < ids.length; i++) x.set(vectors.subarray(ids[i] * dim, ids[i] * dim + dim), i * dim);
  return x;
}

async function reconstructionStats(tok: Tokenizer, vectors: Float32Array, dim: number, ids: Int32Array): Promise<ReconstructionStats | undefined> {
  if (ids.length === 0) return undefined;
  const x = gatherRows(vectors, dim, ids);
  const { recon } = await tok.reconstruct(x);
  const mean = new Float64Array(dim);
  for (let i = 0; i < x.length; i++) mean[i % dim] += x[i] / ids.length;
  let se = 0, tv = 0;
  for (let i = 0; i < x.length; i++) {
    se += (x[i] - recon[i]) ** 2;
    tv += (x[i] - mean[i % dim]) ** 2;
  }
  return { ids: ids.length, mse: se / x.length, relative: tv > 0 ? se / tv : 0 };
}

/**
 * Trains a tokenizer on n vectors of `dim` ((n * dim) row-major). The input array is never
 * modified (masking happens inside the native step on a copy).
 */
export async function trainTokenizer(vectors: Float32Array, dim: number, input: TokenizerConfigInput = {}, opts: TrainTokenizerOptions = {}): Promise<TrainedTokenizer> {
  const config = resolveTokenizerConfig(input);
  const n = checkVectors(vectors, dim, 'trainTokenizer: vectors');
  if (n < 2) throw new RangeError(`trainTokenizer: need at least 2 vectors, got ${n}`);
  const { onProgress, signal } = opts;
  const rand = seededRandom(config.seed);

  // Held-out ids: a seeded sample of the trainable ids, never trained on.
  const { exclude } = opts;
  if (exclude && exclude.length !== n) throw new RangeError(`trainTokenizer: exclude has ${exclude.length} entries for ${n} vectors`);
  const excluded = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !!exclude?.[i]);
  const order = Int32Array.from({ length: n }, (_, i) => i).filter((i) => !exclude?.[i]);
  if (order.length < 2) throw new RangeError(`trainTokenizer: need at least 2 trainable vectors, got ${order.length}`);
  if (config.uniqueCodes && order.length > Math.pow(config.L, config.K)) {
    throw new RangeError(`trainTokenizer: unique codes for ${order.length} ids need at least as many K-tuples, but L^K = ${config.L}^${config.K} = ${Math.pow(config.L, config.K)}; raise L or K, or turn unique codes off`);
  }
  shuffle(order, rand);
  const nHeld = Math.min(order.length - 1, Math.floor(config.holdout * order.length));
  const heldOut = order.slice(0, nHeld).sort();
  const trainIds = order.slice(nHeld).sort();

  const tok = new Tokenizer(config, dim);
  try {
    const { K, L, dc } = config;
    if (config.standardize) tok.fitStandardization(vectors, trainIds);
    // What the native model trains on: the standardised copy (or the caller's array, read only).
    const xs = tok.standardize(vectors);
    if (config.kmeansInit) {
      throwIfAborted(signal);
      const sample = trainIds.slice();
      shuffle(sample, rand);
      const S = Math.min(config.kmeansSamples, sample.length);
      onProgress?.({ phase: 'init', message: `k-means initialisation of ${K} codebooks on ${S} encoder outputs` });
      const a = await tok.native.encoderOutputs(gatherRows(xs, dim, sample.subarray(0, S)));
      const rows = Int32Array.from({ length: L }, (_, l) => l);
      const slice = new Float32Array(S * dc);
      for (let k = 0; k < K; k++) {
        for (let s = 0; s < S; s++) slice.set(a.subarray((s * K + k) * dc, (s * K + k + 1) * dc), s * dc);
        const { centroids } = await kmeans(slice, dc, L, { iters: config.kmeansIters, seed: config.seed * 131 + k });
        tok.native.setCodewords(k, rows, centroids);
      }
    }

    const history: TokenizerEpochRecord[] = [];
    const lastUsed = Array.from({ length: K }, () => new Int32Array(L).fill(-1));
    const B = Math.min(config.batchSize, trainIds.length);
    const xbuf = new Float32Array(B * dim);
    const idbuf = new Int32Array(B);
    const batches = Math.ceil(trainIds.length / B);
    let reseededTotal = 0;
    let xtrain: Float32Array | undefined; // (trainIds.length, dim) standardised training rows, reused
    const t0 = performance.now();
    for (let epoch = 0; epoch < config.epochs; epoch++) {
      const te = performance.now();
      const perm = trainIds.slice();
      shuffle(perm, rand);
      const used = Array.from({ length: K }, () => new Uint8Array(L));
      let loss = 0, recon = 0, cb = 0, com = 0, dec = 0, seen = 0;
      for (let bi = 0; bi < batches; bi++) {
        throwIfAborted(signal);
        const ids = perm.subarray(bi * B, Math.min(perm.length, (bi + 1) * B));
        const m = ids.length;
        gatherRows(xs, dim, ids, xbuf);
        idbuf.set(ids);
        const r = await tok.native.trainStep(xbuf.subarray(0, m * dim), idbuf.subarray(0, m), epoch);
        for (let i = 0; i < r.codes.length; i++) used[i % K][r.codes[i]] = 1;
        loss += r.loss * m;
        recon += r.recon * m;
        cb += r.codebook * m;
        com += r.commitment * m;
        dec += r.decorrelation * m;
        seen += m;
        onProgress?.({ phase: 'batch', epoch: epoch + 1, epochs: config.epochs, batch: bi + 1, batches, loss: r.loss });
      }
      // Codeword usage as inference sees it: clean (unmasked) codes of every training id. A codeword
      // used only under masking would otherwise never be re-seeded yet stay empty in the final codes.
      let reseeded = 0;
      let cleanUtilisation: number[] | undefined;
      if (config.reseedAfter > 0) {
        const xt = gatherRows(xs, dim, trainIds, xtrain);
        xtrain = xt;
        const codes = new Int32Array(trainIds.length * K);
        const dist = new Float32Array(trainIds.length * K);
        for (let r0 = 0; r0 < trainIds.length; r0 += 4096) {
          const r1 = Math.min(trainIds.length, r0 + 4096);
          const e = await tok.native.encode(xt.subarray(r0 * dim, r1 * dim), 'cpu');
          codes.set(e.codes, r0 * K);
          dist.set(e.dist, r0 * K);
        }
        const cleanUsed = Array.from({ length: K }, () => new Uint8Array(L));
        for (let i = 0; i < codes.length; i++) cleanUsed[i % K][codes[i]] = 1;
        cleanUtilisation = cleanUsed.map((u) => u.reduce((s2, v) => s2 + v, 0) / L);
        for (let k = 0; k < K; k++) for (let l = 0; l < L; l++) if (cleanUsed[k][l]) lastUsed[k][l] = epoch;
        // Re-seed codewords unused for reseedAfter epochs (not after the last epoch: the final codes
        // should come from trained codewords). They take the encoder outputs of the training ids
        // that their codebook serves worst (largest distance to their codeword), which also splits
        // the crowded cells where ids collide.
        if (epoch + 1 < config.epochs) {
          for (let k = 0; k < K; k++) {
            const dead: number[] = [];
            for (let l = 0; l < L; l++) if (epoch - lastUsed[k][l] >= config.reseedAfter) dead.push(l);
            if (!dead.length) continue;
            const take = dead.slice(0, trainIds.length);
            const worst = Array.from({ length: trainIds.length }, (_, i) => i)
              .sort((i, j) => dist[j * K + k] - dist[i * K + k] || i - j)
              .slice(0, take.length);
            const a = await tok.native.encoderOutputs(gatherRows(xt, dim, worst));
            const values = new Float32Array(take.length * dc);
            for (let t = 0; t < take.length; t++) values.set(a.subarray((t * K + k) * dc, (t * K + k + 1) * dc), t * dc);
            tok.native.setCodewords(k, Int32Array.from(take), values);
            for (const l of take) lastUsed[k][l] = epoch;
            reseeded += take.length;
          }
        }
      }
      reseededTotal += reseeded;
      const rec: TokenizerEpochRecord = {
        epoch: epoch + 1,
        loss: loss / seen,
        recon: recon / seen,
        codebook: cb / seen,
        commitment: com / seen,
        decorrelation: dec / seen,
        utilisation: used.map((u) => u.reduce((s, v) => s + v, 0) / L),
        ...(cleanUtilisation ? { cleanUtilisation } : {}),
        reseeded,
        seconds: (performance.now() - te) / 1000,
      };
      history.push(rec);
      onProgress?.({ phase: 'epoch', epochs: config.epochs, ...rec });
    }
    const trainSeconds = (performance.now() - t0) / 1000;

    const nearest = await tok.encode(vectors);
    let codesK = nearest;
    let assignment: AssignmentStats | undefined;
    if (config.uniqueCodes) {
      // Excluded ids (unseen users) keep their nearest codes, as any id encoded after training.
      const eligible = Uint8Array.from({ length: n }, (_, i) => (exclude?.[i] ? 0 : 1));
      const r = await assignUniqueCodes(nearest, K, L, tokenizerDistances(tok, vectors, tok.codebooks()), { eligible });
      codesK = r.codes;
      assignment = r.stats;
    }
    const codes = config.disambiguate ? disambiguate(codesK, K) : codesK;
    const collisions = collisionStats(codesK, K);
    const stats: TokenizerStats = {
      ids: n,
      dim,
      codebooks: codebookStats(codesK, K, L),
      collisions,
      nearestCollisions: collisionStats(nearest, K),
      ...(assignment ? { assignment } : {}),
      reconTrain: (await reconstructionStats(tok, vectors, dim, trainIds))!,
      reconHeldOut: await reconstructionStats(tok, vectors, dim, heldOut),
      reconExcluded: await reconstructionStats(tok, vectors, dim, excluded),
      ...(config.disambiguate ? { extraCodeRange: collisions.maxGroupSize } : {}),
      epochs: config.epochs,
      reseededTotal,
      trainSeconds,
      secondsPerEpoch: config.epochs ? trainSeconds / config.epochs : 0,
      finalEpoch: history[history.length - 1],
    };
    return { tokenizer: tok, codes, codeWidth: config.disambiguate ? K + 1 : K, heldOut, stats, history };
  } catch (e) {
    tok.dispose();
    throw e;
  }
}
