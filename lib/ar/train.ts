// Training and evaluation of the autoregressive baseline on the same samples as LLM4Rec.
import { seededRandom } from '../data/split.js';
import { usersWithTarget, type SplitName } from '../eval/evaluate.js';
import { DEFAULT_KS, metricsFromRanks, type Metrics } from '../eval/metrics.js';
import { learningRate } from '../t5/schedule.js';
import { padPrompts, promptTokens, type PromptInputs } from '../llm/model.js';
import { TRAIN_TEMPLATES, type PromptKind } from '../llm/prompts.js';
import { evaluationSample, trainingSample, type Sample } from '../llm/samples.js';
import { subsetUsers, type LLMData, type LLMTrainOptions } from '../llm/train.js';
import type { ARRec } from './model.js';
import { OnnxARBeam } from './onnx-beam.js';
import type { BeamResult } from './beam.js';

/** What the AR baseline needs of LLM4Rec's data: the split and the codes (no item vectors). */
export type ARData = Pick<LLMData, 'split' | 'userCodes' | 'itemCodes'>;

export interface AREpochReport {
  epoch: number;
  loss: number;
  seconds: number;
  valid?: { hr20: number; ndcg20: number };
}

/**
 * Ranks from beam search: the target's 1-based position among the returned items once the
 * user's own (excluded) items are removed; numItems + 1 when it was not returned (a miss).
 */
export async function evaluateAR(
  model: ARRec,
  data: ARData,
  which: SplitName,
  o: { users?: Int32Array; beam: number; kind?: PromptKind; cap: number; ks?: readonly number[]; batch?: number; engine?: 'onnx' | 'native'; threads?: number },
): Promise<{ metrics: Metrics; ranks: Int32Array }> {
  const { split } = data;
  const users = o.users ?? usersWithTarget(split, which);
  const ks = o.ks ?? DEFAULT_KS;
  const ranks = new Int32Array(users.length);
  const rand = seededRandom(12345);
  const batch = o.batch ?? 16;
  // 'onnx' (default): the exported graphs with the KV cache (encoder once per user); 'native'
  // re-runs the full native forward at every step. Both give the same items (test/ar-onnx.test.ts).
  let onnx: OnnxARBeam | undefined;
  if ((o.engine ?? 'onnx') === 'onnx') {
    const g = model.exportOnnx();
    onnx = await OnnxARBeam.create(g.encoder, g.step, model.t5.config, model.trie, { start: model.vocab.pad, itemBase: model.vocab.itemBase }, { intraOpNumThreads: o.threads, allowSpinning: false });
  }
  const search = (p: PromptInputs, so: { beam: number; k: number }): Promise<BeamResult[]> => (onnx ? onnx.search(p, so) : model.recommend(p, so));
  try {
    for (let s = 0; s < users.length; s += batch) {
      const part = Array.from(users.subarray(s, s + batch));
      const samples = part.map((u) => evaluationSample(split, u, which, o.cap, rand));
      const p = padPrompts(samples.map((x) => promptTokens(model.vocab, data.userCodes, data.itemCodes, x, o.kind ?? 'seen', 0)));
      const res = await search(p, { beam: o.beam, k: o.beam });
      res.forEach((r, k) => {
        const u = part[k];
        const excluded = new Set(split.train[u]);
        if (which === 'test' && split.valid[u] >= 0) excluded.add(split.valid[u]);
        let pos = 0;
        let rank = split.numItems + 1;
        for (const item of r.items) {
          if (excluded.has(item)) continue;
          pos++;
          if (item === samples[k].target) {
            rank = pos;
            break;
          }
        }
        ranks[s + k] = rank;
      });
    }
  } finally {
    await onnx?.dispose();
  }
  return { metrics: metricsFromRanks(ranks, ks), ranks };
}

export async function trainAR(model: ARRec, data: ARData, o: LLMTrainOptions & { beam: number }, hooks: { onEpoch?: (r: AREpochReport) => void; onBest?: (epoch: number) => void | Promise<void>; signal?: AbortSignal } = {}): Promise<{ history: AREpochReport[]; bestEpoch: number }> {
  const { split } = data;
  const trainers = Array.from(split.trainUsers).filter((u) => split.train[u].length > 0);
  const validUsers = subsetUsers(usersWithTarget(split, 'valid'), Math.min(o.maxValidUsers, 500), o.seed + 7);
  const stepsPerEpoch = Math.ceil((trainers.length * o.samplesPerUser) / o.batch);
  const schedule = { peak: o.lr, warmupSteps: Math.floor(o.warmupFraction * stepsPerEpoch * o.epochs), totalSteps: Math.max(1, stepsPerEpoch * o.epochs), decay: 'linear' as const, minRatio: 0.05 };
  const history: AREpochReport[] = [];
  let best = -1, bestEpoch = -1, bad = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const rand = seededRandom(o.seed * 1000 + epoch + 99);
    const samples: Sample[] = [];
    for (let r = 0; r < o.samplesPerUser; r++) for (const u of trainers) samples.push(trainingSample(split, u, o.historyCap, rand));
    for (let i = samples.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [samples[i], samples[j]] = [samples[j], samples[i]];
    }
    const t0 = performance.now();
    let lossSum = 0, n = 0;
    for (let s = 0; s < samples.length; s += o.batch) {
      if (hooks.signal?.aborted) throw new Error('training aborted');
      const b = samples.slice(s, s + o.batch);
      const p = padPrompts(b.map((x) => promptTokens(model.vocab, data.userCodes, data.itemCodes, x, 'seen', Math.floor(rand() * TRAIN_TEMPLATES.length))));
      const lr = learningRate(schedule, Math.min(epoch * stepsPerEpoch + n, schedule.totalSteps - 1));
      lossSum += await model.trainStep(p, b.map((x) => x.target), { lr, weightDecay: o.weightDecay, clipNorm: o.clipNorm });
      n++;
    }
    const report: AREpochReport = { epoch: epoch + 1, loss: lossSum / n, seconds: (performance.now() - t0) / 1000 };
    if ((epoch + 1) % o.evalEvery === 0 || epoch + 1 === o.epochs) {
      const ev = await evaluateAR(model, data, 'valid', { users: validUsers, beam: o.beam, cap: o.historyCap, ks: [20] });
      report.valid = { hr20: ev.metrics.hr[20], ndcg20: ev.metrics.ndcg[20] };
      if (report.valid.ndcg20 > best) {
        best = report.valid.ndcg20;
        bestEpoch = epoch + 1;
        bad = 0;
        await hooks.onBest?.(epoch + 1);
      } else bad++;
    }
    history.push(report);
    hooks.onEpoch?.(report);
    if (bad >= o.patience) break;
  }
  return { history, bestEpoch };
}
