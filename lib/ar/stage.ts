// The AR baseline as a stage of a model directory: trained on the same split, item codes and
// prompts as LLM4Rec, then written as
//   ar.<sha12>.safetensors  T5 tensors (HF names) + heads (head.{k}.weight (L, d), head.{k}.bias (L));
//                           metadata: the T5 config and the codes' K, L
//   ar-encoder.onnx, ar-step.onnx  the graphs of cached beam search (lib/ar/onnx-export.ts)
// and recorded in manifest.json under 'ar' with the validation and test metrics.
//
// Inputs from the directory: the tokenizer stage's codes (tokenizer_codes.safetensors) and, when
// the LLM stage has written it, its vocab.json (so that both models read identical prompts).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { f32, readSafetensors, writeSafetensors, expectTensor, requireFinite } from '../io/safetensors.js';
import { recordStage, requireManifest, splitFingerprint, verifyStage } from '../io/manifest.js';
import { t5Config, t5TensorShapes, type T5Config, type T5PresetName } from '../t5/config.js';
import { T5Model } from '../t5/model.js';
import { t5TensorsFrom } from '../t5/checkpoint.js';
import { Mlp } from '../nn/mlp.js';
import { Vocabulary } from '../llm/vocab.js';
import type { Codes } from '../llm/model.js';
import { DEFAULT_LLM_TRAIN, type LLMTrainOptions } from '../llm/train.js';
import { TOKENIZER_STAGE } from '../tokenizer/stage.js';
import { loadTokenizerCodes } from '../tokenizer/codes.js';
import type { Split } from '../data/types.js';
import type { Metrics } from '../eval/metrics.js';
import { ARRec } from './model.js';
import { evaluateAR, trainAR, type ARData, type AREpochReport } from './train.js';

export const AR_STAGE = 'ar';
export const AR_FILES = { encoder: 'ar-encoder.onnx', step: 'ar-step.onnx', vocab: 'vocab.json' } as const;

export interface ARStageOptions extends Partial<LLMTrainOptions> {
  /** Backbone preset (default t5-mini) and overrides. */
  preset?: T5PresetName;
  t5?: Partial<T5Config>;
  /** Beam width of evaluation (default 20). */
  beam?: number;
  /** Decoder query tokens of the vocabulary when no vocab.json exists yet (LLM4Rec's P; default 20). */
  decoderQueries?: number;
  /** Also evaluate on the test split (default true). */
  test?: boolean;
}

export interface ARStageResult {
  history: AREpochReport[];
  bestEpoch: number;
  valid: Metrics;
  test?: Metrics;
  files: string[];
}

/** Codes of the tokenizer stage, read as the LLM stage reads them (lib/tokenizer/codes.ts). */
export function readTokenizerCodes(dir: string): { userCodes: Codes; itemCodes: Codes } {
  const { users, items } = loadTokenizerCodes(dir);
  return { userCodes: users, itemCodes: items };
}

function snapshot(model: ARRec): { t5: Record<string, Float32Array>; heads: { w: Float32Array; b: Float32Array }[] } {
  return { t5: model.t5.getTensors(), heads: model.heads.map((h) => ({ w: Float32Array.from(h.weights[0]), b: Float32Array.from(h.biases[0]) })) };
}

/** Tensors of the AR weights file. */
function arTensors(t5: Record<string, Float32Array>, heads: { w: Float32Array; b: Float32Array }[], config: T5Config, L: number) {
  const shapes = t5TensorShapes(config);
  const out: Record<string, ReturnType<typeof f32>> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    if (!t5[name]) throw new Error(`AR weights: T5 tensor '${name}' is missing`);
    out[name] = f32(shape, t5[name]);
  }
  heads.forEach((h, k) => {
    out[`head.${k}.weight`] = f32([L, config.dModel], h.w);
    out[`head.${k}.bias`] = f32([L], h.b);
  });
  return out;
}

/** Trains the AR baseline into `dir` (see the top of this file). `split` must be the directory's. */
export async function trainARStage(dir: string, split: Split, options: ARStageOptions = {}, hooks: { onEpoch?: (r: AREpochReport) => void; signal?: AbortSignal } = {}): Promise<ARStageResult> {
  const manifest = requireManifest(dir);
  if (splitFingerprint(split) !== manifest.dataset.fingerprint) throw new Error(`${dir}: the split given is not the one this model directory was trained on`);
  const { userCodes, itemCodes } = readTokenizerCodes(dir);
  if (itemCodes.codes.length / itemCodes.K !== split.numItems) throw new Error(`${dir}: ${itemCodes.codes.length / itemCodes.K} item codes for ${split.numItems} items`);
  const vocabPath = join(dir, AR_FILES.vocab);
  const vocab = existsSync(vocabPath)
    ? Vocabulary.fromJSON(JSON.parse(readFileSync(vocabPath, 'utf8')))
    : new Vocabulary({ userK: userCodes.K, userL: userCodes.L, itemK: itemCodes.K, itemL: itemCodes.L, decoderQueries: options.decoderQueries ?? 20 });
  if (vocab.spec.itemK !== itemCodes.K || vocab.spec.itemL < itemCodes.L || vocab.spec.userK !== userCodes.K || vocab.spec.userL < userCodes.L) {
    throw new Error(`${vocabPath}: vocabulary (items ${vocab.spec.itemK}x${vocab.spec.itemL}, users ${vocab.spec.userK}x${vocab.spec.userL}) does not fit the tokenizer codes`);
  }
  const items: Codes = { K: itemCodes.K, L: vocab.spec.itemL, codes: itemCodes.codes };
  const users: Codes = { K: userCodes.K, L: vocab.spec.userL, codes: userCodes.codes };
  const o: LLMTrainOptions & { beam: number } = { ...DEFAULT_LLM_TRAIN, ...trainOptionsOf(options), beam: options.beam ?? 20 };
  const config = t5Config(options.preset ?? 't5-mini', vocab.size, options.t5 ?? {});
  const data: ARData = { split, userCodes: users, itemCodes: items };
  const model = ARRec.create(config, vocab, items, o.seed);
  try {
    let best: ReturnType<typeof snapshot> | undefined;
    const { history, bestEpoch } = await trainAR(model, data, o, { onEpoch: hooks.onEpoch, signal: hooks.signal, onBest: () => void (best = snapshot(model)) });
    if (best) {
      model.t5.setTensors(best.t5);
      best.heads.forEach((h, k) => {
        model.heads[k].weights[0].set(h.w);
        model.heads[k].biases[0].set(h.b);
      });
    }
    const valid = (await evaluateAR(model, data, 'valid', { beam: o.beam, cap: o.historyCap })).metrics;
    const test = options.test === false ? undefined : (await evaluateAR(model, data, 'test', { beam: o.beam, cap: o.historyCap })).metrics;

    const s = snapshot(model);
    const tensors = arTensors(s.t5, s.heads, config, items.L);
    const h = createHash('sha256');
    for (const name of Object.keys(tensors).sort()) h.update(name).update(new Uint8Array(tensors[name].data.buffer, tensors[name].data.byteOffset, tensors[name].data.byteLength));
    const weights = `ar.${h.digest('hex').slice(0, 12)}.safetensors`;
    writeSafetensors(join(dir, weights), tensors, { config: JSON.stringify(config), codes: JSON.stringify({ K: items.K, L: items.L }) });
    const graphs = model.exportOnnx();
    writeFileAtomic(join(dir, AR_FILES.encoder), graphs.encoder);
    writeFileAtomic(join(dir, AR_FILES.step), graphs.step);
    const previous = manifest.stages[AR_STAGE] ? Object.keys(manifest.stages[AR_STAGE].files) : [];
    const files = [weights, AR_FILES.encoder, AR_FILES.step];
    recordStage(dir, manifest, AR_STAGE, { preset: options.preset ?? 't5-mini', t5: config, train: o, tokenizer: manifest.stages[TOKENIZER_STAGE].files }, files, { bestEpoch, valid, test, history });
    for (const f of previous) if (!files.includes(f)) rmSync(join(dir, f), { force: true });
    return { history, bestEpoch, valid, test, files };
  } finally {
    model.dispose();
  }
}

/** Loads the AR stage of a model directory (verifying the files' sha256) as a native ARRec. */
export function loadARStage(dir: string): ARRec {
  const manifest = requireManifest(dir);
  verifyStage(dir, manifest, AR_STAGE);
  const file = Object.keys(manifest.stages[AR_STAGE].files).find((f) => f.endsWith('.safetensors'));
  if (!file) throw new Error(`${dir}: stage 'ar' records no safetensors file`);
  const path = join(dir, file);
  const { tensors, metadata } = readSafetensors(path);
  const config = JSON.parse(metadata.config) as T5Config;
  const { K, L } = JSON.parse(metadata.codes) as { K: number; L: number };
  const { itemCodes } = readTokenizerCodes(dir);
  const vocab = existsSync(join(dir, AR_FILES.vocab))
    ? Vocabulary.fromJSON(JSON.parse(readFileSync(join(dir, AR_FILES.vocab), 'utf8')))
    : new Vocabulary({ userK: readTokenizerCodes(dir).userCodes.K, userL: L, itemK: K, itemL: L, decoderQueries: 20 });
  const heads = Array.from({ length: K }, (_, k) => {
    const m = new Mlp([config.dModel, L]);
    const w = expectTensor(tensors, `head.${k}.weight`, [L, config.dModel], path);
    const b = expectTensor(tensors, `head.${k}.bias`, [L], path);
    requireFinite(w, `head.${k}.weight`, path);
    requireFinite(b, `head.${k}.bias`, path);
    m.weights[0].set(w.data);
    m.biases[0].set(b.data);
    return m;
  });
  const t5 = T5Model.fromTensors(config, t5TensorsFrom(tensors, config, path), path);
  return new ARRec(t5, heads, vocab, { K, L, codes: itemCodes.codes });
}

/** The LLMTrainOptions fields that are set in `o`. */
function trainOptionsOf(o: ARStageOptions): Partial<LLMTrainOptions> {
  const keys = Object.keys(DEFAULT_LLM_TRAIN) as (keyof LLMTrainOptions)[];
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Partial<LLMTrainOptions>;
}
