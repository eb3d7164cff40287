// LLM4Rec training and evaluation (stage 2). The tokenizers' codes and the item vectors are
// frozen inputs; the backbone, its token embeddings and the projection train.
import type { Split } from '../data/types.js';
import { seededRandom, trainingItemCounts } from '../data/split.js';
import { evaluateVectors, usersWithTarget, type Evaluation, type SplitName } from '../eval/evaluate.js';
import { DEFAULT_KS } from '../eval/metrics.js';
import type { Similarity } from '../eval/rank.js';
import { biasedItemRows, biasedQueryRows, popularityPrior } from './bias.js';
import { learningRate } from '../t5/schedule.js';
import { ItemSoftmax, LLM_LOSSES, cosineMarginLoss, type LLMLoss } from './loss.js';
import { LLM4Rec, padPrompts, promptTokens, type Codes, type Objective } from './model.js';
import type { PromptKind } from './prompts.js';
import { TRAIN_TEMPLATES } from './prompts.js';
import { evaluationSample, sampleNegative, trainingSample, type Sample } from './samples.js';

export interface LLMTrainOptions {
  epochs: number;
  /** Training samples drawn per user per epoch (each: a random training item as target). */
  samplesPerUser: number;
  batch: number;
  /** Peak learning rate of the backbone (linear warm-up, then linear decay) and of the projection. */
  lr: number;
  projLr: number;
  warmupFraction: number;
  weightDecay: number;
  clipNorm: number;
  /**
   * 'margin': the paper's 1 - cos to the positive plus max(0, cos - gamma) to one random negative;
   * 'softmax-cosine' / 'softmax-dot' / 'softmax-cosine-bias' (beyond the paper): cross-entropy of
   * the target among every item the user has not interacted with, scored by cos / temperature, by
   * the dot product, or by cos / temperature plus a learned per-item bias (lib/llm/bias.ts).
   * Each model is selected on validation with the scoring its loss trains (selectionScoring).
   */
  loss: LLMLoss;
  /** Margin of the negative term ('margin'). */
  gamma: number;
  /** Softmax temperature ('softmax-cosine', 'softmax-cosine-bias'). */
  temperature: number;
  /** Most history items in a prompt (longer histories are subsampled). */
  historyCap: number;
  /** Evaluate on validation every this many epochs; stop after `patience` evaluations without improvement. */
  evalEvery: number;
  patience: number;
  /** Validation users used for model selection (a seeded subset when there are more). */
  maxValidUsers: number;
  seed: number;
}

export const DEFAULT_LLM_TRAIN: LLMTrainOptions = {
  epochs: 30,
  samplesPerUser: 4,
  batch: 64,
  lr: 1e-3,
  projLr: 1e-3,
  warmupFraction: 0.05,
  weightDecay: 0.01,
  clipNorm: 1.0,
  loss: 'margin',
  gamma: 0.1,
  temperature: 0.1,
  historyCap: 100,
  evalEvery: 1,
  patience: 4,
  maxValidUsers: 2000,
  seed: 0,
};

export interface EpochReport {
  epoch: number;
  loss: number;
  seconds: number;
  samplesPerSecond: number;
  valid?: { hr20: number; ndcg20: number };
}

export interface TrainHooks {
  onEpoch?: (r: EpochReport) => void;
  onBatch?: (done: number, total: number, loss: number) => void;
  signal?: AbortSignal;
  /** Called with the epoch number when the model improved on validation (to save it). */
  onBest?: (epoch: number, model: LLM4Rec) => void | Promise<void>;
}

export interface LLMData {
  split: Split;
  userCodes: Codes;
  itemCodes: Codes;
  /** (numItems * d) frozen item vectors (the CF stage's). */
  itemVectors: Float32Array;
  itemDim: number;
}

/** Groups samples into batches of similar prompt length (less padding), in random batch order. */
function lengthBucketedBatches(samples: Sample[], batch: number, rand: () => number): Sample[][] {
  const chunk = batch * 32;
  const batches: Sample[][] = [];
  for (let c = 0; c < samples.length; c += chunk) {
    const part = samples.slice(c, c + chunk).sort((a, b) => a.history.length - b.history.length);
    for (let i = 0; i < part.length; i += batch) batches.push(part.slice(i, i + batch));
  }
  for (let i = batches.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [batches[i], batches[j]] = [batches[j], batches[i]];
  }
  return batches;
}

function gatherVectors(v: Float32Array, d: number, ids: number[]): Float32Array {
  const out = new Float32Array(ids.length * d);
  ids.forEach((i, k) => out.set(v.subarray(i * d, (i + 1) * d), k * d));
  return out;
}

/** Embeds evaluation prompts of `users` in batches: (users.length * d). */
export async function embedUsers(model: LLM4Rec, data: LLMData, users: Int32Array, which: SplitName, kind: PromptKind, cap: number, batch = 64, seed = 12345): Promise<Float32Array> {
  const d = data.itemDim;
  const out = new Float32Array(users.length * d);
  const rand = seededRandom(seed);
  for (let s = 0; s < users.length; s += batch) {
    const part = Array.from(users.subarray(s, s + batch));
    const prompts = part.map((u) => promptTokens(model.vocab, data.userCodes, data.itemCodes, evaluationSample(data.split, u, which, cap, rand), kind, 0));
    out.set(await model.embed(padPrompts(prompts)), s * d);
  }
  return out;
}

/**
 * How a model output z ranks the items: 'cosine' (the paper), 'dot' (against the un-normalised
 * item vectors) or 'cosine-bias' (cos / temperature + the model's learned item bias).
 */
export const LLM_SCORINGS = ['cosine', 'dot', 'cosine-bias'] as const;
export type LLMScoring = (typeof LLM_SCORINGS)[number];

/**
 * Ranks model outputs z (users * d) by `scoring` against every item: HR/NDCG of the targets of
 * `which`. 'cosine-bias' needs a model with an item bias and its training temperature.
 */
export async function evaluateOutputs(
  model: LLM4Rec,
  data: LLMData,
  which: SplitName,
  users: Int32Array,
  z: Float32Array,
  scoring: LLMScoring,
  o: { temperature: number; ks?: readonly number[] },
): Promise<Evaluation> {
  const d = data.itemDim;
  const common = { split: data.split, which, users, queryRows: 'selected' as const, ks: o.ks ?? DEFAULT_KS };
  if (scoring === 'cosine-bias') {
    if (!model.itemBias) throw new Error("scoring 'cosine-bias' needs a model trained with its item bias (--llm-loss softmax-cosine-bias)");
    const items = biasedItemRows(data.itemVectors, d, model.itemBias.values, o.temperature);
    return evaluateVectors({ ...common, userVectors: biasedQueryRows(z, d), itemVectors: items, dim: d + 1, similarity: 'dot' });
  }
  if (scoring !== 'cosine' && scoring !== 'dot') throw new RangeError(`unknown scoring '${String(scoring)}' (${LLM_SCORINGS.join(', ')})`);
  return evaluateVectors({ ...common, userVectors: z, itemVectors: data.itemVectors, dim: d, similarity: scoring satisfies Similarity });
}

/** HR/NDCG of the model on `which` for `users` (default: training users with a target). */
export async function evaluateLLM(
  model: LLM4Rec,
  data: LLMData,
  which: SplitName,
  opts: { kind?: PromptKind; users?: Int32Array; cap?: number; scoring?: LLMScoring; temperature?: number; ks?: readonly number[]; batch?: number } = {},
): Promise<Evaluation> {
  const users = opts.users ?? usersWithTarget(data.split, which);
  const z = await embedUsers(model, data, users, which, opts.kind ?? 'seen', opts.cap ?? DEFAULT_LLM_TRAIN.historyCap, opts.batch);
  return evaluateOutputs(model, data, which, users, z, opts.scoring ?? 'cosine', { temperature: opts.temperature ?? DEFAULT_LLM_TRAIN.temperature, ks: opts.ks });
}

/** Seeded subset of at most n users (ascending). */
export function subsetUsers(users: Int32Array, n: number, seed: number): Int32Array {
  if (users.length <= n) return users;
  const rand = seededRandom(seed);
  const a = Array.from(users);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (a.length - i));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return Int32Array.from(a.slice(0, n).sort((x, y) => x - y));
}

/** The scoring the model is selected with on validation: the one its loss trains for. */
export function selectionScoring(o: Pick<LLMTrainOptions, 'loss'>): LLMScoring {
  return o.loss === 'softmax-dot' ? 'dot' : o.loss === 'softmax-cosine-bias' ? 'cosine-bias' : 'cosine';
}

export interface TrainResult {
  history: EpochReport[];
  bestEpoch: number;
  bestValid: number;
  stoppedEarly: boolean;
}

/**
 * Trains `model` in place. `startEpoch` > 0 resumes after a checkpoint: with the model's weights
 * and optimiser state of that epoch restored, `best` and `bad` (evaluations without improvement
 * since the best) as they were then, the run continues exactly as an uninterrupted one, because
 * every epoch's randomness (samples, templates, negatives, batch order, dropout) is seeded from
 * (seed, epoch) and the learning rate from the global step. Keeps track of the best validation
 * NDCG@20 and calls hooks.onBest so the caller can save that model.
 */
export async function trainLLM(
  model: LLM4Rec,
  data: LLMData,
  o: LLMTrainOptions,
  hooks: TrainHooks = {},
  startEpoch = 0,
  best = { epoch: -1, ndcg20: -1 },
  bad = 0,
): Promise<TrainResult> {
  const { split } = data;
  const d = data.itemDim;
  const trainers = Array.from(split.trainUsers).filter((u) => split.train[u].length > 0);
  if (trainers.length === 0) throw new Error('LLM4Rec: no user has training items');
  const known = new Map<number, Set<number>>();
  for (const u of trainers) known.set(u, new Set(split.train[u]));
  const validUsers = subsetUsers(usersWithTarget(split, 'valid'), o.maxValidUsers, o.seed + 7);
  const stepsPerEpoch = Math.ceil((trainers.length * o.samplesPerUser) / o.batch);
  const schedule = { peak: o.lr, warmupSteps: Math.floor(o.warmupFraction * stepsPerEpoch * o.epochs), totalSteps: Math.max(1, stepsPerEpoch * o.epochs), decay: 'linear' as const, minRatio: 0.05 };
  const loss = o.loss ?? 'margin';
  if (!LLM_LOSSES.includes(loss)) throw new RangeError(`LLM4Rec: unknown loss '${loss}' (${LLM_LOSSES.join(', ')})`);
  // The softmax scores items the way the model is selected (and served).
  const selectBy = selectionScoring(o);
  const softmax = loss === 'margin' ? undefined : new ItemSoftmax(data.itemVectors, d, selectBy === 'dot' ? 'dot' : 'cosine', o.temperature);
  const bias = model.itemBias;
  if ((selectBy === 'cosine-bias') !== (bias !== undefined)) throw new Error(bias ? `LLM4Rec: the model has an item bias but the loss '${loss}' does not train it` : "LLM4Rec: the loss 'softmax-cosine-bias' needs a model created with an item bias (shape.biasItems)");
  if (bias && bias.numItems !== split.numItems) throw new Error(`LLM4Rec: the model's item bias has ${bias.numItems} items, the data ${split.numItems}`);
  // A bias that has taken no step yet (a fresh run) starts at the popularity prior.
  if (bias && bias.steps === 0) bias.values.set(popularityPrior(trainingItemCounts(split)));
  const history: EpochReport[] = [];
  // A checkpoint written by the epoch that hit the patience resumes as stopped.
  let stoppedEarly = startEpoch > 0 && startEpoch < o.epochs && bad >= o.patience;
  for (let epoch = startEpoch; epoch < o.epochs && !stoppedEarly; epoch++) {
    if (hooks.signal?.aborted) throw new Error('training aborted');
    const rand = seededRandom(o.seed * 1000 + epoch);
    model.t5.setDropoutSeed(o.seed * 1000 + epoch);
    const samples: Sample[] = [];
    for (let r = 0; r < o.samplesPerUser; r++) for (const u of trainers) samples.push(trainingSample(split, u, o.historyCap, rand));
    const batches = lengthBucketedBatches(samples, o.batch, rand);
    const t0 = performance.now();
    let lossSum = 0;
    for (let bi = 0; bi < batches.length; bi++) {
      if (hooks.signal?.aborted) throw new Error('training aborted');
      const b = batches[bi];
      const prompts = b.map((s) => promptTokens(model.vocab, data.userCodes, data.itemCodes, s, 'seen', Math.floor(rand() * TRAIN_TEMPLATES.length)));
      let objective: Objective;
      if (softmax) {
        objective = (z) => softmax.loss(z, b.map((s) => s.target), (r) => known.get(b[r].user)!, bias?.values);
      } else {
        const pos = gatherVectors(data.itemVectors, d, b.map((s) => s.target));
        const neg = gatherVectors(data.itemVectors, d, b.map((s) => sampleNegative(split.numItems, known.get(s.user)!, rand)));
        objective = (z) => cosineMarginLoss(z, pos, neg, d, o.gamma);
      }
      const step = epoch * stepsPerEpoch + bi;
      const lr = learningRate(schedule, Math.min(step, schedule.totalSteps - 1));
      const { loss } = await model.trainStep(padPrompts(prompts), objective, { lr, projLr: (o.projLr * lr) / o.lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
      lossSum += loss;
      hooks.onBatch?.(bi + 1, batches.length, loss);
    }
    const seconds = (performance.now() - t0) / 1000;
    const report: EpochReport = { epoch: epoch + 1, loss: lossSum / batches.length, seconds, samplesPerSecond: samples.length / seconds };
    if ((epoch + 1) % o.evalEvery === 0 || epoch + 1 === o.epochs) {
      const ev = await evaluateLLM(model, data, 'valid', { users: validUsers, cap: o.historyCap, ks: [20], scoring: selectBy, temperature: o.temperature });
      report.valid = { hr20: ev.metrics.hr[20], ndcg20: ev.metrics.ndcg[20] };
      if (report.valid.ndcg20 > best.ndcg20) {
        best = { epoch: epoch + 1, ndcg20: report.valid.ndcg20 };
        bad = 0;
        await hooks.onBest?.(epoch + 1, model);
      } else bad++;
    }
    history.push(report);
    hooks.onEpoch?.(report);
    if (bad >= o.patience) {
      stoppedEarly = true;
      break;
    }
  }
  return { history, bestEpoch: best.epoch, bestValid: best.ndcg20, stoppedEarly };
}

