// Stage 2 of the pipeline: LLM4Rec trained on a model directory that holds the CF vectors
// (stage 'cf') and the tokenizers' codes (stage 'tokenizer'). Writes the trained backbone and
// projection (safetensors, Hugging Face T5 names + proj.*), the vocabulary, and the serving graph
// backbone.onnx (prompt token ids -> z), then records the stage with its metrics.
// Checkpoints after every epoch (checkpoints/llm-last.*: weights, optimiser state, then the
// state file that points at them) make a killed run resume exactly where an uninterrupted run
// would be; the best epoch on validation is kept apart (checkpoints/llm-best.safetensors) and is
// what gets saved.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Split } from '../data/types.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readManifest, recordStage, requireManifest, verifyStage, type Manifest } from '../io/manifest.js';
import { encodeSafetensors, expectTensor, f32, readSafetensors, requireFinite, writeSafetensors, type TensorMap } from '../io/safetensors.js';
import { loadCfStage } from '../cf/store.js';
import { exportT5Onnx, type T5HeadLayer } from '../t5/onnx-export.js';
import { t5Config, type T5PresetName } from '../t5/config.js';
import { T5Model } from '../t5/model.js';
import { Mlp } from '../nn/mlp.js';
import { usersWithTarget } from '../eval/evaluate.js';
import type { Metrics } from '../eval/metrics.js';
import { LLM4Rec, type Codes, type LLM4RecShape } from './model.js';
import { ItemBias } from './bias.js';
import { CODE_EMBEDDINGS, embedCodebooks, type CodeEmbeddings } from './code-init.js';
import { TOKENIZER_FILES } from '../tokenizer/stage.js';
import { DEFAULT_LLM_TRAIN, embedUsers, evaluateOutputs, trainLLM, type EpochReport, type LLMData, type LLMScoring, type LLMTrainOptions } from './train.js';
import { Vocabulary } from './vocab.js';
import type { PromptKind } from './prompts.js';
import { loadTokenizerCodes } from '../tokenizer/codes.js';

export const LLM_STAGE = 'llm';

export interface LLMStageConfig {
  preset: T5PresetName;
  /** Decoder query tokens P (the reference code uses 20). */
  queries: number;
  projHidden: number[];
  dropout: number;
  /** How the code tokens' embeddings start: 'random' (the paper; also when absent), 'codebooks' or 'item-codebooks' (lib/llm/code-init.ts). */
  codeEmbeddings?: CodeEmbeddings;
  train: LLMTrainOptions;
}

export const DEFAULT_LLM_STAGE: LLMStageConfig = {
  preset: 't5-mini',
  queries: 20,
  projHidden: [512, 256],
  dropout: 0.1,
  train: DEFAULT_LLM_TRAIN,
};

export interface LLMStageHooks {
  onEpoch?: (r: EpochReport) => void;
  onBatch?: (done: number, total: number, loss: number) => void;
  onMessage?: (s: string) => void;
  signal?: AbortSignal;
}

/** numItems: for the item bias of 'softmax-cosine-bias' models. */
function modelShape(cfg: LLMStageConfig, vocab: Vocabulary, itemDim: number, numItems: number): LLM4RecShape {
  const shape: LLM4RecShape = { t5: t5Config(cfg.preset, vocab.size, { dropoutRate: cfg.dropout }), queries: cfg.queries, projHidden: cfg.projHidden, itemDim };
  if (cfg.train.loss === 'softmax-cosine-bias') shape.biasItems = numItems;
  return shape;
}

/** The learned item bias's tensor (numItems), beside the backbone's and the projection's. */
export const ITEM_BIAS_TENSOR = 'item_bias';

function modelTensors(m: LLM4Rec): TensorMap {
  const shapes = m.t5.tensorShapes();
  const out: TensorMap = {};
  for (const [name, data] of Object.entries(m.t5.getTensors())) out[name] = f32(shapes[name], data);
  for (const [name, t] of Object.entries(m.proj.tensors('proj'))) out[name] = f32(t.shape, t.data);
  if (m.itemBias) out[ITEM_BIAS_TENSOR] = f32([m.itemBias.numItems], m.itemBias.values);
  return out;
}

/**
 * The optimiser state of a model as tensors: the backbone's AdamW moments under
 * `t5.m.{name}` / `t5.v.{name}` (the weights' shapes), the projection's under
 * `proj.m.{l}.weight` ... (its tensors' shapes), step counts in the metadata.
 */
export function optimizerTensors(m: LLM4Rec): { tensors: TensorMap; metadata: Record<string, string> } {
  const shapes = m.t5.tensorShapes();
  const t5 = m.t5.getOptimizerState();
  const tensors: TensorMap = {};
  for (const name of Object.keys(shapes)) {
    tensors[`t5.m.${name}`] = f32(shapes[name], t5.m[name]);
    tensors[`t5.v.${name}`] = f32(shapes[name], t5.v[name]);
  }
  const proj = m.proj.optimizerState();
  const projShapes = projTensorShapes(m.proj);
  // Before the projection's first step it has no moments (and proj_steps is 0).
  if (proj.m.length) {
    projOrder(m.proj.layers).forEach((name, k) => {
      tensors[`proj.m.${name}`] = f32(projShapes[name], proj.m[k]);
      tensors[`proj.v.${name}`] = f32(projShapes[name], proj.v[k]);
    });
  }
  const metadata: Record<string, string> = { t5_steps: String(t5.steps), proj_steps: String(proj.t) };
  if (m.itemBias) {
    tensors['bias.m'] = f32([m.itemBias.numItems], m.itemBias.m);
    tensors['bias.v'] = f32([m.itemBias.numItems], m.itemBias.v);
    metadata.bias_steps = String(m.itemBias.steps);
  }
  return { tensors, metadata };
}

/** Shapes of the projection's tensors by name (`{l}.weight`, `{l}.bias`), as the Mlp itself gives them. */
function projTensorShapes(proj: LLM4Rec['proj']): Record<string, number[]> {
  return Object.fromEntries(Object.entries(proj.tensors('p')).map(([name, t]) => [name.slice('p.'.length), t.shape]));
}

/** Names of the projection's tensors in Mlp's optimiser order: weights[0..], then biases[0..]. */
function projOrder(layers: number): string[] {
  return [...Array.from({ length: layers }, (_, l) => `${l}.weight`), ...Array.from({ length: layers }, (_, l) => `${l}.bias`)];
}

function stepsOf(metadata: Record<string, string>, key: string, source: string): number {
  const v = Number(metadata[key]);
  if (metadata[key] === undefined || !Number.isSafeInteger(v) || v < 0) throw new Error(`${source}: metadata '${key}' must be a non-negative integer, got ${metadata[key]}`);
  return v;
}

/**
 * Restores the optimiser state written by optimizerTensors. Every tensor must be there with its
 * exact shape; values are checked (finite, second moments >= 0) before anything changes.
 */
export function restoreOptimizer(m: LLM4Rec, tensors: TensorMap, metadata: Record<string, string>, source: string): void {
  const shapes = m.t5.tensorShapes();
  const t5Steps = stepsOf(metadata, 't5_steps', source);
  const projSteps = stepsOf(metadata, 'proj_steps', source);
  const known = new Set<string>();
  const t5 = { steps: t5Steps, m: {} as Record<string, Float32Array>, v: {} as Record<string, Float32Array> };
  for (const [name, shape] of Object.entries(shapes)) {
    for (const k of ['m', 'v'] as const) {
      const t = expectTensor(tensors, `t5.${k}.${name}`, shape, source);
      requireFinite(t, `t5.${k}.${name}`, source);
      t5[k][name] = t.data as Float32Array;
      known.add(`t5.${k}.${name}`);
    }
  }
  const proj = { t: projSteps, m: [] as Float32Array[], v: [] as Float32Array[] };
  const projShapes = projTensorShapes(m.proj);
  if (projSteps > 0) {
    for (const name of projOrder(m.proj.layers)) {
      for (const k of ['m', 'v'] as const) {
        const t = expectTensor(tensors, `proj.${k}.${name}`, projShapes[name], source);
        requireFinite(t, `proj.${k}.${name}`, source);
        proj[k].push(t.data as Float32Array);
        known.add(`proj.${k}.${name}`);
      }
    }
  }
  let bias: { m: Float32Array; v: Float32Array; steps: number } | undefined;
  if (m.itemBias) {
    const n = m.itemBias.numItems;
    bias = { m: expectTensor(tensors, 'bias.m', [n], source).data as Float32Array, v: expectTensor(tensors, 'bias.v', [n], source).data as Float32Array, steps: stepsOf(metadata, 'bias_steps', source) };
    known.add('bias.m').add('bias.v');
  }
  for (const name of Object.keys(tensors)) if (!known.has(name)) throw new Error(`${source}: unexpected tensor '${name}' in the optimiser state`);
  // The bias first: setState checks everything before it changes anything.
  if (bias) m.itemBias!.setState(bias.m, bias.v, bias.steps, source);
  // The projection first: it is checked in TypeScript and changes nothing when it throws; then
  // the backbone, which the native code checks before it changes anything. On an error the
  // caller discards the whole model.
  m.proj.setOptimizerState(proj);
  try {
    m.t5.setOptimizerState(t5);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
}

/** Rebuilds a model from saved tensors (T5 HF names + proj.*), checking every shape and value. */
export function modelFromTensors(shape: LLM4RecShape, vocab: Vocabulary, tensors: TensorMap, source: string): LLM4Rec {
  const t5Tensors: TensorMap = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (!name.startsWith('proj.') && name !== ITEM_BIAS_TENSOR) t5Tensors[name] = t;
    requireFinite(t, name, source);
  }
  if (!shape.biasItems && tensors[ITEM_BIAS_TENSOR]) throw new Error(`${source}: holds an item bias, but the model's configuration has none`);
  const itemBias = shape.biasItems ? new ItemBias(shape.biasItems, expectTensor(tensors, ITEM_BIAS_TENSOR, [shape.biasItems], source).data as Float32Array) : undefined;
  const t5 = T5Model.fromTensors(shape.t5, t5Tensors, source);
  const sizes = [shape.queries * shape.t5.dModel, ...shape.projHidden, shape.itemDim];
  const proj = new Mlp(sizes, 0);
  for (let l = 0; l + 1 < sizes.length; l++) {
    proj.weights[l].set(expectTensor(tensors, `proj.${l}.weight`, [sizes[l + 1], sizes[l]], source).data);
    proj.biases[l].set(expectTensor(tensors, `proj.${l}.bias`, [sizes[l + 1]], source).data);
  }
  return new LLM4Rec(shape, vocab, t5, proj, itemBias);
}

/** The head of the serving graph: the projection as ONNX dense layers. */
export function projectionHead(m: LLM4Rec): T5HeadLayer[] {
  return m.proj.weights.map((w, l) => ({
    weight: w,
    bias: m.proj.biases[l],
    inFeatures: m.proj.sizes[l],
    outFeatures: m.proj.sizes[l + 1],
    activation: l + 1 < m.proj.layers ? ('relu' as const) : ('none' as const),
  }));
}

export interface LLMStageInputs {
  data: LLMData;
  vocab: Vocabulary;
}

/** Reads the frozen inputs of the LLM stage from the model directory. */
export function llmInputs(dir: string, split: Split, cfg: LLMStageConfig): LLMStageInputs {
  const cf = loadCfStage(dir);
  const codes = loadTokenizerCodes(dir);
  if (codes.users.codes.length !== split.numUsers * codes.users.K) throw new Error(`${dir}: the tokenizer stage has codes for another number of users`);
  if (codes.items.codes.length !== split.numItems * codes.items.K) throw new Error(`${dir}: the tokenizer stage has codes for another number of items`);
  const vocab = new Vocabulary({ userK: codes.users.K, userL: codes.users.L, itemK: codes.items.K, itemL: codes.items.L, decoderQueries: cfg.queries });
  return { vocab, data: { split, userCodes: codes.users, itemCodes: codes.items, itemVectors: cf.itemVectors, itemDim: cf.dim } };
}

function configHash(cfg: LLMStageConfig, m: Manifest): string {
  return createHash('sha256').update(JSON.stringify({ cfg, fp: m.dataset.fingerprint, cf: m.stages.cf?.files, tok: m.stages.tokenizer?.files })).digest('hex').slice(0, 16);
}

export interface LLMEvaluation {
  /** Test metrics for users that took part in training, per prompt kind and scoring. */
  test: Record<PromptKind, Metrics>;
  valid: Metrics;
  /** Popularity-keeping variant: dot product against the un-normalised item vectors. */
  testDot: Metrics;
  validDot: Metrics;
  /** Models with an item bias: cos / temperature + bias (seen prompt). */
  testBias?: Metrics;
  validBias?: Metrics;
  /** Users held out of every training stage (seen prompt). */
  testUnseenUsers?: Metrics;
  testUnseenUsersDot?: Metrics;
  testUnseenUsersBias?: Metrics;
}

/** Evaluates a trained model: valid/test, three prompt kinds, cosine, dot (and cosine-bias) scoring, unseen users. */
export async function evaluateLLMStage(model: LLM4Rec, data: LLMData, cap: number, temperature: number): Promise<LLMEvaluation> {
  const { split } = data;
  // Metrics of `users` under each scoring of `scorings` (the other prompts are recorded with cosine only).
  const run = async (which: 'valid' | 'test', kind: PromptKind, users: Int32Array, scorings: readonly LLMScoring[]) => {
    const z = await embedUsers(model, data, users, which, kind, cap);
    const out: Partial<Record<LLMScoring, Metrics>> = {};
    for (const s of scorings) out[s] = (await evaluateOutputs(model, data, which, users, z, s, { temperature })).metrics;
    return out;
  };
  const all: LLMScoring[] = model.itemBias ? ['cosine', 'dot', 'cosine-bias'] : ['cosine', 'dot'];
  const testUsers = usersWithTarget(split, 'test');
  const validUsers = usersWithTarget(split, 'valid');
  const seen = await run('test', 'seen', testUsers, all);
  const valid = await run('valid', 'seen', validUsers, all);
  const unseenPrompt = await run('test', 'unseen', testUsers, ['cosine']);
  const idOnly = await run('test', 'id-only', testUsers, ['cosine']);
  const out: LLMEvaluation = { test: { seen: seen.cosine!, unseen: unseenPrompt.cosine!, 'id-only': idOnly.cosine! }, valid: valid.cosine!, testDot: seen.dot!, validDot: valid.dot! };
  if (model.itemBias) {
    out.testBias = seen['cosine-bias'];
    out.validBias = valid['cosine-bias'];
  }
  const unseenUsers = usersWithTarget(split, 'test', 'unseen');
  if (unseenUsers.length) {
    const u = await run('test', 'seen', unseenUsers, all);
    out.testUnseenUsers = u.cosine;
    out.testUnseenUsersDot = u.dot;
    if (model.itemBias) out.testUnseenUsersBias = u['cosine-bias'];
  }
  return out;
}

export interface LLMStageResult {
  metrics: Record<string, unknown>;
  upToDate: boolean;
}

interface CheckpointState {
  hash: string;
  epoch: number;
  best: { epoch: number; ndcg20: number };
  history: EpochReport[];
}

/**
 * The model and progress of the last checkpoint, or why it cannot be used (reason '' when it is
 * of another configuration: no message then). Anything unusable (unreadable files, files of
 * another epoch, wrong shapes, NaN, negative second moments) means a clean restart, never a
 * half-restored model.
 */
function resumeFromCheckpoint(
  shape: LLM4RecShape,
  vocab: Vocabulary,
  hash: string,
  lastPath: string,
  optimPath: string,
  statePath: string,
): { model: LLM4Rec; epoch: number; best: CheckpointState['best']; history: EpochReport[] } | { reason: string } {
  let st: CheckpointState;
  try {
    st = JSON.parse(readFileSync(statePath, 'utf8')) as CheckpointState;
    if (typeof st !== 'object' || st === null || !Number.isSafeInteger(st.epoch) || st.epoch < 1 || !Array.isArray(st.history) || typeof st.best?.epoch !== 'number') {
      throw new Error('fields missing or malformed');
    }
  } catch (e) {
    return { reason: `the checkpoint state ${statePath} is unreadable (${(e as Error).message})` };
  }
  if (st.hash !== hash) return { reason: '' };
  let model: LLM4Rec | undefined;
  try {
    for (const p of [lastPath, optimPath]) if (!existsSync(p)) throw new Error(`${p} is missing`);
    const weights = readSafetensors(lastPath);
    const optim = readSafetensors(optimPath);
    for (const [p, f] of [[lastPath, weights], [optimPath, optim]] as const) {
      if (f.metadata.epoch !== String(st.epoch) || f.metadata.hash !== hash) {
        throw new Error(`${p} is of epoch ${f.metadata.epoch ?? '?'}, the state file of epoch ${st.epoch}`);
      }
    }
    model = modelFromTensors(shape, vocab, weights.tensors, lastPath);
    restoreOptimizer(model, optim.tensors, optim.metadata, optimPath);
    return { model, epoch: st.epoch, best: st.best, history: st.history };
  } catch (e) {
    model?.dispose();
    return { reason: `the checkpoint of epoch ${st.epoch} cannot be resumed: ${(e as Error).message}` };
  }
}

/** Starts the code tokens' embeddings of `which` (user, item) at projections of the tokenizers' codebooks (lib/llm/code-init.ts). */
export function embedTokenizerCodebooks(model: LLM4Rec, dir: string, seed: number, which: readonly ('user' | 'item')[] = ['user', 'item']): void {
  const shared = model.t5.getTensors()['shared.weight'];
  const { dModel } = model.shape.t5;
  const v = model.vocab;
  const all = [['user', TOKENIZER_FILES.user, v.userBase, v.spec.userK, v.spec.userL], ['item', TOKENIZER_FILES.item, v.itemBase, v.spec.itemK, v.spec.itemL]] as const;
  for (const [who, file, base, K, L] of all.filter(([w]) => which.includes(w))) {
    const path = join(dir, file);
    if (!existsSync(path)) throw new Error(`--code-embeddings codebooks: ${path} (the ${who} tokenizer) is missing`);
    const cb = readSafetensors(path).tensors.codebooks;
    // A disambiguation level (--disambiguate) adds a code level of its own after the codebooks' K: it stays random.
    if (!cb || cb.shape.length !== 3 || cb.shape[0] > K || cb.shape[1] !== L) throw new Error(`${path}: no codebooks of shape (K <= ${K}, ${L}, dc) for the ${who} codes`);
    embedCodebooks(shared, dModel, base, cb.data as Float32Array, cb.shape[0], L, cb.shape[2], seed * 31 + (who === 'user' ? 1 : 2));
  }
  model.t5.setTensors({ 'shared.weight': shared });
}

/** Trains (or resumes) the LLM stage into `dir` and records it. */
export async function runLLMStage(dir: string, split: Split, cfg: LLMStageConfig, hooks: LLMStageHooks = {}): Promise<LLMStageResult> {
  const manifest = requireManifest(dir);
  verifyStage(dir, manifest, 'cf');
  verifyStage(dir, manifest, 'tokenizer');
  const { data, vocab } = llmInputs(dir, split, cfg);
  const shape = modelShape(cfg, vocab, data.itemDim, split.numItems);
  const ckDir = join(dir, 'checkpoints');
  const lastPath = join(ckDir, 'llm-last.safetensors');
  const bestPath = join(ckDir, 'llm-best.safetensors');
  const optimPath = join(ckDir, 'llm-last.optim.safetensors');
  const statePath = join(ckDir, 'llm-state.json');
  const hash = configHash(cfg, manifest);
  let model: LLM4Rec | undefined;
  let startEpoch = 0;
  let best = { epoch: -1, ndcg20: -1 };
  let history: EpochReport[] = [];
  if (existsSync(statePath)) {
    const resumed = resumeFromCheckpoint(shape, vocab, hash, lastPath, optimPath, statePath);
    if ('model' in resumed) {
      ({ model, history } = resumed);
      startEpoch = resumed.epoch;
      best = resumed.best;
      hooks.onMessage?.(`llm: resuming after epoch ${startEpoch} (best so far: epoch ${best.epoch})`);
    } else if (resumed.reason) {
      hooks.onMessage?.(`llm: ${resumed.reason}; training starts over from epoch 0`);
    }
  }
  if (!model) {
    // A fresh run: no best model of an earlier run may stand in for this one's.
    rmSync(bestPath, { force: true });
    model = LLM4Rec.create(shape, vocab, cfg.train.seed);
    const init = cfg.codeEmbeddings ?? 'random';
    if (!CODE_EMBEDDINGS.includes(init)) throw new RangeError(`codeEmbeddings must be one of ${CODE_EMBEDDINGS.join(', ')}, got '${String(init)}'`);
    if (init !== 'random') embedTokenizerCodebooks(model, dir, cfg.train.seed, init === 'codebooks' ? ['user', 'item'] : ['item']);
  }
  // Evaluations without improvement since the best one (the early-stopping counter).
  const bad = history.filter((r) => r.valid && r.epoch > best.epoch).length;
  const training = model;

  const t0 = performance.now();
  const result = await trainLLM(
    model,
    data,
    cfg.train,
    {
      signal: hooks.signal,
      onBatch: hooks.onBatch,
      onBest: (epoch, m) => {
        writeSafetensors(bestPath, modelTensors(m), { epoch: String(epoch) });
      },
      onEpoch: (r) => {
        history.push(r);
        if (r.valid && r.valid.ndcg20 > best.ndcg20) best = { epoch: r.epoch, ndcg20: r.valid.ndcg20 };
        // Weights and optimiser state first (each written atomically, tagged with the epoch),
        // the state file that points at them last: a kill in between leaves a state file whose
        // epoch does not match, which resumeFromCheckpoint refuses.
        const tag = { hash, epoch: String(r.epoch) };
        writeSafetensors(lastPath, modelTensors(training), tag);
        const optim = optimizerTensors(training);
        writeSafetensors(optimPath, optim.tensors, { ...optim.metadata, ...tag });
        writeFileAtomic(statePath, JSON.stringify({ hash, epoch: r.epoch, best, history }));
        hooks.onEpoch?.(r);
      },
    },
    startEpoch,
    best,
    bad,
  );
  const trainSeconds = (performance.now() - t0) / 1000;
  // The saved model is the best epoch on validation.
  if (existsSync(bestPath)) {
    const bestModel = modelFromTensors(shape, vocab, readSafetensors(bestPath).tensors, bestPath);
    model.dispose();
    model = bestModel;
  }
  const ev = await evaluateLLMStage(model, data, cfg.train.historyCap, cfg.train.temperature);

  const tensors = modelTensors(model);
  const h = createHash('sha256');
  for (const part of encodeSafetensors(tensors)) h.update(part);
  const weightsFile = `llm.${h.digest('hex').slice(0, 12)}.safetensors`;
  writeSafetensors(join(dir, weightsFile), tensors, { preset: cfg.preset, fingerprint: manifest.dataset.fingerprint });
  writeFileAtomic(join(dir, 'vocab.json'), JSON.stringify(vocab.toJSON()) + '\n');
  const onnx = exportT5Onnx(shape.t5, model.t5.getTensors(), { head: projectionHead(model) });
  writeFileAtomic(join(dir, 'backbone.onnx'), onnx);
  const metrics = {
    ...ev,
    bestEpoch: result.bestEpoch,
    epochsRun: history.length,
    stoppedEarly: result.stoppedEarly,
    trainSeconds,
    samplesPerSecond: history.length ? history.reduce((s, r) => s + r.samplesPerSecond, 0) / history.length : 0,
    history,
    parameters: model.t5.numParameters(),
  };
  const fresh = readManifest(dir)!;
  const previous = fresh.stages[LLM_STAGE] ? Object.keys(fresh.stages[LLM_STAGE].files) : [];
  recordStage(dir, fresh, LLM_STAGE, { ...cfg, hash } as unknown as Record<string, unknown>, [weightsFile, 'vocab.json', 'backbone.onnx'], metrics);
  for (const f of previous) if (f !== weightsFile && f.startsWith('llm.')) rmSync(join(dir, f), { force: true });
  for (const p of [lastPath, optimPath, bestPath, statePath]) rmSync(p, { force: true });
  model.dispose();
  return { metrics, upToDate: false };
}

/** Loads the trained LLM4Rec of a model directory (verifying sha256s). */
export function loadLLMStage(dir: string): { model: LLM4Rec; vocab: Vocabulary; config: LLMStageConfig } {
  const m = requireManifest(dir);
  verifyStage(dir, m, LLM_STAGE);
  const rec = m.stages[LLM_STAGE];
  const cfg = rec.config as unknown as LLMStageConfig;
  const vocab = Vocabulary.fromJSON(JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')));
  const file = Object.keys(rec.files).find((f) => f.startsWith('llm.') && f.endsWith('.safetensors'))!;
  const cf = loadCfStage(dir);
  const shape = modelShape(cfg, vocab, cf.dim, cf.itemVectors.length / cf.dim);
  return { model: modelFromTensors(shape, vocab, readSafetensors(join(dir, file)).tensors, join(dir, file)), vocab, config: cfg };
}
