// The Recommender: a trained model directory (lib/llm/stage.ts) served as an API.
//
//   request -> prompt (user id tokens + the id tokens of the user's items) -> backbone.onnx
//   (ONNX Runtime: prompt -> z, a vector in item space) -> exact top-K over the item vectors
//   (lib/retrieval) -> the dataset's own item ids with scores.
//
// Requests name a known user (its codes and training items come from the model directory), a
// history of item ids for a new user (CF fold-in vector -> frozen user tokenizer -> codes), or a
// raw query vector in item space (no language model). Every request is validated synchronously
// (`resolve`) before any work is queued, so one bad request never fails a batch it would have
// joined. A batch runs the ONNX graph in chunks and makes one top-K call for all of it.
//
// The model directory holds dense indices only; the dataset's own string ids come from the data
// the model was trained on (reloaded from the path recorded in the manifest, or given), checked
// against the manifest's split fingerprint.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Csr, Dataset, Split } from '../data/types.js';
import { toCsr } from '../data/types.js';
import { splitLeaveOneOut } from '../data/split.js';
import { requireManifest, splitFingerprint, verifyStage, type Manifest } from '../io/manifest.js';
import { loadCfStage, CF_STAGE, type LoadedCfStage } from '../cf/store.js';
import { FoldInContext } from '../cf/foldin.js';
import { Tokenizer } from '../tokenizer/model.js';
import { TOKENIZER_FILES, TOKENIZER_STAGE } from '../tokenizer/stage.js';
import { loadTokenizerCodes } from '../tokenizer/codes.js';
import { assignUniqueCodes, tokenizerDistances } from '../tokenizer/assign.js';
import { ITEM_BIAS_TENSOR, LLM_STAGE, type LLMStageConfig } from '../llm/stage.js';
import { LLM_SCORINGS, type LLMScoring } from '../llm/train.js';
import { biasedItemRows, biasedQueryRows } from '../llm/bias.js';
import { expectTensor, readSafetensors, requireFinite } from '../io/safetensors.js';
import { Vocabulary } from '../llm/vocab.js';
import { padPrompts, promptTokens, type Codes } from '../llm/model.js';
import { OnnxSession, type OnnxRunner } from '../onnx/session.js';
import { OnnxWorkerSession } from '../onnx/worker-session.js';
import { runOnnxT5 } from '../onnx/t5-runner.js';
import { ItemIndex, MAX_K, type TopKResult } from '../retrieval/topk.js';
import { FaissIndex, faissAvailable } from '../retrieval/faiss.js';
import { backendInfo, resolveBackend, type Backend } from '../native/addon.js';
import { loadDatasetFromCli } from '../cli/data-options.js';
import { RecommenderError, badRequest } from './errors.js';
import { IDS_FILE, readModelIds } from '../io/ids.js';

/** 'cosine' (the paper), 'dot' (keeps the item norms' popularity), 'cosine-bias' (cosine + the learned item bias; lib/llm/bias.ts). */
export type Scoring = LLMScoring;

export interface RecommenderOptions {
  /** Native backend for top-K, fold-in and tokenizer encoding ('auto': CUDA when usable). */
  backend?: Backend;
  /** Exact top-K engine: the project's fused kernel (default) or faiss-node's flat index. */
  index?: 'native' | 'faiss';
  /** Default: the one that scored best on validation (manifest: llm metrics valid, validDot, validBias NDCG@20). */
  scoring?: Scoring;
  /** ONNX Runtime intra-op threads (default: ONNX Runtime's, one per physical core). */
  threads?: number;
  /** Run the backbone in a worker thread (a server: never blocks the event loop). Default false (inline, batch jobs). */
  worker?: boolean;
  /** Where the dataset's string ids come from: the loaded dataset, or a path / synthetic spec (default: the manifest's source). */
  dataset?: Dataset;
  data?: string;
  /** Users per ONNX Runtime run (default 64). */
  batchSize?: number;
}

export interface RecommendRequest {
  /** A user of the dataset (its own id). */
  user?: string;
  /** A new user's items (dataset item ids), oldest first. */
  history?: string[];
  /** A query vector in item space (dim values); skips the language model. */
  userVector?: ArrayLike<number>;
  /** Results wanted (default 20, at most 1024). */
  k?: number;
  /** Item ids never to recommend (in addition to the user's own items). */
  exclude?: string[];
  /** Leave out the user's own items (training items of a known user, or the given history). Default true. */
  excludeSeen?: boolean;
}

export interface RecommendedItem {
  /** The dataset's item id. */
  id: string;
  /** Dense item index of the model. */
  index: number;
  score: number;
}

export interface Recommendation {
  /** The request's user, when it named one. */
  user?: string;
  items: RecommendedItem[];
}

/** A validated request: everything the batch needs, in dense indices. */
export interface ResolvedRequest {
  kind: 'user' | 'history' | 'vector';
  user?: string;
  /** Dense user index (kind 'user'). */
  userIndex: number;
  /** Items shown in the prompt (kind 'user': the user's items; 'history': the given ones). */
  history: Int32Array;
  vector?: Float32Array;
  k: number;
  exclude: Int32Array;
}

export interface ModelInfo {
  dir: string;
  dataset: string;
  users: number;
  items: number;
  dim: number;
  scoring: Scoring;
  validNdcg20: { cosine?: number; dot?: number; 'cosine-bias'?: number };
  index: 'native' | 'faiss';
  /** Where top-K runs ('cpu' or 'cuda'). */
  topkBackend: 'cpu' | 'cuda';
  /** provider: the execution provider used; why: why not an accelerated one. */
  onnx: { provider: string; why: string; available: string[]; worker: boolean; threads?: number; version: string };
  preset: string;
  queries: number;
  historyCap: number;
}

const DEFAULT_K = 20;

interface SearchIndex {
  add(v: Float32Array): Promise<void>;
  search(q: Float32Array, k: number, exclude?: Csr, opts?: { backend?: Backend }): Promise<TopKResult>;
  readonly size: number;
  dispose(): void;
}

/** Validation NDCG@20 per scoring, from the llm stage's metrics (absent when not measured). */
function validScorings(metrics: Record<string, unknown>): { cosine?: number; dot?: number; 'cosine-bias'?: number } {
  return { cosine: ndcg20(metrics.valid), dot: ndcg20(metrics.validDot), 'cosine-bias': ndcg20(metrics.validBias) };
}

/**
 * The learned item bias of a softmax-cosine-bias model (numItems), and the bias for items added
 * later: they have no training interactions, so they get the mean bias of the items with the
 * fewest training interactions.
 */
function loadItemBias(dir: string, m: Manifest, cf: LoadedCfStage): { values: Float32Array; newItem: number } {
  const numItems = cf.itemVectors.length / cf.dim;
  const file = Object.keys(m.stages[LLM_STAGE].files).find((f) => f.startsWith('llm.') && f.endsWith('.safetensors'));
  const path = join(dir, file ?? 'llm.safetensors');
  const { tensors } = readSafetensors(path);
  if (!tensors[ITEM_BIAS_TENSOR]) throw new RangeError(`scoring 'cosine-bias' needs a model trained with an item bias (--llm-loss softmax-cosine-bias); ${path} has none`);
  const t = expectTensor(tensors, ITEM_BIAS_TENSOR, [numItems], path);
  requireFinite(t, ITEM_BIAS_TENSOR, path);
  const values = t.data as Float32Array;
  const counts = new Int32Array(numItems);
  for (const i of cf.trainIdx) counts[i]++;
  let least = Infinity;
  for (const c of counts) least = Math.min(least, c);
  let sum = 0, n = 0;
  for (let i = 0; i < numItems; i++) if (counts[i] === least) (sum += values[i]), n++;
  return { values, newItem: sum / n };
}

function ndcg20(m: unknown): number | undefined {
  const v = (m as { ndcg?: Record<string, number> } | undefined)?.ndcg?.['20'];
  return typeof v === 'number' ? v : undefined;
}

function tupleKey(codes: ArrayLike<number>, start: number, K: number): string {
  let s = '';
  for (let k = 0; k < K; k++) s += codes[start + k] + ',';
  return s;
}

/**
 * Growable code table (n, width) of one tokenizer. With disambiguation width = K + 1: the tokenizer
 * gives K codes and the last one tells apart ids sharing a K-tuple (0, 1, 2, ... in arrival order).
 * Otherwise, when the tokenizer was trained with uniqueCodes, a new id whose nearest K-tuple a
 * table id already holds takes the cheapest free tuple, as the ids known at training time did.
 */
class CodeTable {
  codes: Int32Array;
  n: number;
  readonly width: number;
  readonly L: number;
  private readonly K: number;
  private counts: Map<string, number> | undefined;
  private codebooks: Float32Array | undefined;

  constructor(c: Codes, private readonly tok: Tokenizer) {
    this.codes = c.codes;
    this.width = c.K;
    this.L = c.L;
    this.K = tok.K;
    this.n = c.codes.length / c.K;
    if (this.width !== this.K && this.width !== this.K + 1) throw new Error(`codes have ${this.width} columns for a tokenizer with K = ${this.K}`);
  }

  row(i: number): Int32Array {
    return this.codes.subarray(i * this.width, (i + 1) * this.width);
  }

  /**
   * Full codes (m * width) of new ids, without adding them: vectors (m * dim) are what the
   * tokenizer encoded into raw (m * K). commit: the ids are about to be appended, so they must not
   * share a tuple with each other either; transient ids (history requests) are each placed against
   * the table alone, so that a request's codes never depend on the batch it shared.
   */
  async complete(raw: Int32Array, vectors: Float32Array, commit: boolean): Promise<Int32Array> {
    const m = raw.length / this.K;
    if (this.width === this.K) {
      if (!this.tok.config.uniqueCodes || m === 0) return raw;
      const { K, L } = this.tok.config;
      const cb = (this.codebooks ??= this.tok.codebooks());
      const dim = this.tok.dim;
      const held = this.codes.subarray(0, this.n * K);
      if (commit) return (await assignUniqueCodes(raw, K, L, tokenizerDistances(this.tok, vectors, cb), { held })).codes;
      const out = new Int32Array(raw.length);
      for (let i = 0; i < m; i++) {
        const one = tokenizerDistances(this.tok, vectors.subarray(i * dim, (i + 1) * dim), cb);
        out.set((await assignUniqueCodes(raw.subarray(i * K, (i + 1) * K), K, L, one, { held })).codes, i * K);
      }
      return out;
    }
    if (!this.counts) {
      this.counts = new Map();
      for (let i = 0; i < this.n; i++) {
        const key = tupleKey(this.codes, i * this.width, this.K);
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      }
    }
    const out = new Int32Array(m * this.width);
    for (let i = 0; i < m; i++) {
      const key = tupleKey(raw, i * this.K, this.K);
      const c = this.counts.get(key) ?? 0;
      if (commit) this.counts.set(key, c + 1);
      out.set(raw.subarray(i * this.K, (i + 1) * this.K), i * this.width);
      // The vocabulary has L tokens for the extra position: a larger group shares the last one.
      out[i * this.width + this.K] = Math.min(c, this.L - 1);
    }
    return out;
  }

  append(full: Int32Array): void {
    const grown = new Int32Array(this.codes.length + full.length);
    grown.set(this.codes);
    grown.set(full, this.codes.length);
    this.codes = grown;
    this.n += full.length / this.width;
  }

  asCodes(): Codes {
    return { K: this.width, L: this.L, codes: this.codes };
  }
}

/** Padded tokens a run may hold beyond its prompts' own tokens, as a fraction of them. */
const MAX_PADDING = 0.3;

/**
 * Splits prompts sorted by length into runs of at most `max`, cutting where padding to the
 * run's longest prompt would exceed MAX_PADDING of the real tokens: the backbone is
 * compute-bound at realistic prompt lengths, so a padded token costs as much as a real one.
 */
export function lengthRuns<T extends { tokens: number[] }>(sorted: T[], max: number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let tokens = 0;
  for (const p of sorted) {
    const len = p.tokens.length;
    if (run.length > 0 && (run.length === max || (run.length + 1) * len > (1 + MAX_PADDING) * (tokens + len))) {
      runs.push(run);
      run = [];
      tokens = 0;
    }
    run.push(p);
    tokens += len;
  }
  if (run.length) runs.push(run);
  return runs;
}

/** Ids of a model directory: the dataset's string ids, and the histories of users held out of training. */
interface ModelIds {
  users: string[];
  items: string[];
  /** Held-out (unseen) user -> its history (the training graph has no row for it). */
  unseenHistory: Map<number, Int32Array>;
}

/**
 * The dataset's string ids: from the model directory's ids.json (written by `train`, part of the
 * cf stage, so its sha256 is checked), else by reloading the training data and checking its split
 * fingerprint against the manifest.
 */
function loadIds(dir: string, m: Manifest, opts: RecommenderOptions): ModelIds {
  const idsPath = join(dir, IDS_FILE);
  if (!opts.dataset && !opts.data && m.stages.cf?.files[IDS_FILE] && existsSync(idsPath)) {
    const j = readModelIds(idsPath);
    if (j.fingerprint !== m.dataset.fingerprint) throw new Error(`${idsPath} belongs to another dataset (fingerprint differs from the manifest's)`);
    return { users: j.users, items: j.items, unseenHistory: new Map(j.unseen.map(([u, h]) => [u, Int32Array.from(h)])) };
  }
  const r = loadIdsFromData(dir, m, opts);
  return { users: r.users, items: r.items, unseenHistory: new Map(Array.from(r.split.unseenUsers, (u) => [u, r.split.train[u]])) };
}

function loadIdsFromData(dir: string, m: Manifest, opts: RecommenderOptions): { users: string[]; items: string[]; split: Split } {
  let dataset = opts.dataset;
  const splitOpts = (m.dataset.split ?? {}) as { unseenFraction?: number; seed?: number; format?: never; userCol?: string; itemCol?: string; timeCol?: string };
  if (!dataset) {
    const source = opts.data ?? m.dataset.source;
    if (!source) throw new Error(`${dir}: the manifest does not say where the data came from; pass the data (--data <path>) to map ids`);
    try {
      dataset = loadDatasetFromCli(source, splitOpts);
    } catch (e) {
      throw new Error(`${dir}: cannot read the data the model was trained on (${source}) for its ids: ${(e as Error).message}; pass --data <path>`);
    }
  }
  const split = splitLeaveOneOut(dataset, { unseenFraction: splitOpts.unseenFraction ?? 0, seed: splitOpts.seed ?? 0 });
  if (splitFingerprint(split) !== m.dataset.fingerprint) {
    throw new Error(`${dir}: the data given for its ids ('${dataset.name}') is not the data the model was trained on (split fingerprint differs)`);
  }
  return { users: dataset.users, items: dataset.items, split };
}

export class Recommender {
  readonly dir: string;
  readonly scoring: Scoring;
  readonly dim: number;
  private readonly manifest: Manifest;
  private readonly cf: LoadedCfStage;
  private readonly userTok: Tokenizer;
  private readonly itemTok: Tokenizer;
  private readonly userCodes: CodeTable;
  private readonly itemCodes: CodeTable;
  private readonly vocab: Vocabulary;
  private readonly llm: LLMStageConfig;
  private session: OnnxRunner | null;
  private readonly index: SearchIndex;
  private readonly indexKind: 'native' | 'faiss';
  /** cosine-bias: the bias items added later get (the mean learned bias of the least-trained items). */
  private readonly newItemBias: number;
  private readonly backend: Backend;
  private readonly batchSize: number;
  private readonly threads: number | undefined;
  private readonly userIds: string[];
  private readonly itemIds: string[];
  private readonly userOf = new Map<string, number>();
  private readonly itemOf = new Map<string, number>();
  /** Items of users whose history is not the training CSR (held-out users, users added later). */
  private readonly extraHistory = new Map<number, Int32Array>();
  private readonly historyCap: number;
  /** Fold-in for history requests: built at the first one (one propagation of the training graph), then reused. */
  private foldInCtx: Promise<FoldInContext> | null = null;

  private constructor(init: {
    dir: string; manifest: Manifest; cf: LoadedCfStage; userTok: Tokenizer; itemTok: Tokenizer; userCodes: Codes; itemCodes: Codes;
    vocab: Vocabulary; llm: LLMStageConfig; session: OnnxRunner; index: SearchIndex; indexKind: 'native' | 'faiss'; scoring: Scoring; newItemBias?: number;
    backend: Backend; batchSize: number; threads?: number; users: string[]; items: string[]; unseenHistory: Map<number, Int32Array>;
  }) {
    this.dir = init.dir;
    this.manifest = init.manifest;
    this.cf = init.cf;
    this.dim = init.cf.dim;
    this.userTok = init.userTok;
    this.itemTok = init.itemTok;
    this.userCodes = new CodeTable(init.userCodes, init.userTok);
    this.itemCodes = new CodeTable(init.itemCodes, init.itemTok);
    this.vocab = init.vocab;
    this.llm = init.llm;
    this.session = init.session;
    this.index = init.index;
    this.indexKind = init.indexKind;
    this.scoring = init.scoring;
    this.newItemBias = init.newItemBias ?? 0;
    this.backend = init.backend;
    this.batchSize = init.batchSize;
    this.threads = init.threads;
    this.historyCap = init.llm.train.historyCap;
    this.userIds = [...init.users];
    this.itemIds = [...init.items];
    this.userIds.forEach((id, u) => this.userOf.set(id, u));
    this.itemIds.forEach((id, i) => this.itemOf.set(id, i));
    // Held-out users took part in no training stage: the CSR has no row for them, their items come from the split.
    for (const [u, h] of init.unseenHistory) this.extraHistory.set(u, h);
  }

  /**
   * Opens a model directory: checks the manifest and the sha256 of every file of the cf,
   * tokenizer and llm stages, loads the vectors, tokenizers, codes and the ONNX backbone.
   */
  static async load(dir: string, opts: RecommenderOptions = {}): Promise<Recommender> {
    const manifest = requireManifest(dir);
    for (const stage of [CF_STAGE, TOKENIZER_STAGE, LLM_STAGE]) verifyStage(dir, manifest, stage);
    const batchSize = opts.batchSize ?? 64;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    const indexKind = opts.index ?? 'native';
    if (indexKind !== 'native' && indexKind !== 'faiss') throw new RangeError(`index must be 'native' or 'faiss', got '${String(indexKind)}'`);
    if (indexKind === 'faiss' && !faissAvailable().ok) throw new Error(`index 'faiss' is not available: ${faissAvailable().reason}`);
    const metrics = manifest.stages[LLM_STAGE].metrics ?? {};
    const validNdcg = validScorings(metrics);
    // Default: the best on validation (cosine on a tie, the paper's).
    const scoring: Scoring = opts.scoring ?? LLM_SCORINGS.reduce((best, s) => ((validNdcg[s] ?? -1) > (validNdcg[best] ?? -1) ? s : best), 'cosine' as Scoring);
    if (!LLM_SCORINGS.includes(scoring)) throw new RangeError(`scoring must be one of ${LLM_SCORINGS.join(', ')}, got '${String(scoring)}'`);
    const backend = opts.backend ?? 'auto';
    resolveBackend(backend); // a clear error for an unusable backend, before anything is loaded

    const ids = loadIds(dir, manifest, opts);
    const cf = loadCfStage(dir);
    const codes = loadTokenizerCodes(dir);
    const llm = manifest.stages[LLM_STAGE].config as unknown as LLMStageConfig;
    const bias = scoring === 'cosine-bias' ? loadItemBias(dir, manifest, cf) : undefined;
    const vocab = Vocabulary.fromJSON(JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')));
    const userTok = Tokenizer.load(join(dir, TOKENIZER_FILES.user));
    const itemTok = Tokenizer.load(join(dir, TOKENIZER_FILES.item));
    let session: OnnxRunner | undefined;
    let index: SearchIndex | undefined;
    try {
      if (userTok.dim !== cf.dim || itemTok.dim !== cf.dim) throw new Error(`${dir}: the tokenizers read ${userTok.dim}/${itemTok.dim}-dimensional vectors but the CF vectors have ${cf.dim}`);
      const sessionOpts = { intraOpNumThreads: opts.threads, allowSpinning: false };
      const onnxPath = join(dir, 'backbone.onnx');
      session = opts.worker ? await OnnxWorkerSession.create(onnxPath, sessionOpts) : await OnnxSession.create(onnxPath, sessionOpts);
      // cosine-bias: an inner product in d + 1 dimensions (lib/llm/bias.ts), so either engine serves it.
      const rows = bias ? biasedItemRows(cf.itemVectors, cf.dim, bias.values, llm.train.temperature) : cf.itemVectors;
      const rowDim = bias ? cf.dim + 1 : cf.dim;
      index = indexKind === 'faiss'
        ? await FaissIndex.create(rows, { dim: rowDim, metric: scoring === 'cosine' ? 'cosine' : 'ip' })
        : await ItemIndex.create(rows, { dim: rowDim, similarity: scoring === 'cosine' ? 'cosine' : 'dot' });
      return new Recommender({
        dir, manifest, cf, userTok, itemTok, userCodes: codes.users, itemCodes: codes.items, vocab, llm, session, index, indexKind, scoring, newItemBias: bias?.newItem,
        backend, batchSize, threads: opts.threads, users: ids.users, items: ids.items, unseenHistory: ids.unseenHistory,
      });
    } catch (e) {
      userTok.dispose();
      itemTok.dispose();
      index?.dispose();
      await session?.dispose();
      throw e;
    }
  }

  get numUsers(): number {
    return this.userIds.length;
  }
  get numItems(): number {
    return this.itemIds.length;
  }
  get disposed(): boolean {
    return this.session === null;
  }

  /** The dataset's id of dense user u / item i. */
  userId(u: number): string {
    return this.userIds[u];
  }
  itemId(i: number): string {
    return this.itemIds[i];
  }

  info(): ModelInfo {
    const metrics = this.manifest.stages[LLM_STAGE].metrics ?? {};
    const rt = OnnxSession.runtimeInfo();
    return {
      dir: this.dir,
      dataset: this.manifest.dataset.name,
      users: this.numUsers,
      items: this.numItems,
      dim: this.dim,
      scoring: this.scoring,
      validNdcg20: validScorings(metrics),
      index: this.indexKind,
      topkBackend: this.indexKind === 'faiss' ? 'cpu' : resolveBackend(this.backend),
      onnx: { provider: this.session?.provider ?? 'cpu', why: acceleratorReason(), available: rt.providers.map((p) => p.name), worker: this.session instanceof OnnxWorkerSession, threads: this.threads, version: rt.version },
      preset: this.llm.preset,
      queries: this.llm.queries,
      historyCap: this.historyCap,
    };
  }

  private live(): OnnxRunner {
    if (!this.session) throw new RecommenderError('ERR_TOKENREC_DISPOSED', 'the Recommender was disposed');
    return this.session;
  }

  private itemIndex(id: unknown, what: string): number {
    if (typeof id !== 'string') throw badRequest(`${what}: item ids are strings, got ${JSON.stringify(id)}`);
    const i = this.itemOf.get(id);
    if (i === undefined) throw new RecommenderError('ERR_TOKENREC_UNKNOWN_ITEM', `${what}: unknown item '${id}'`);
    return i;
  }

  /** The items of dense user u (training items, or the items it was added / held out with). */
  userHistory(u: number): Int32Array {
    const extra = this.extraHistory.get(u);
    if (extra) return extra;
    const { trainPtr, trainIdx } = this.cf;
    return u + 1 < trainPtr.length ? trainIdx.subarray(trainPtr[u], trainPtr[u + 1]) : new Int32Array(0);
  }

  /** Validates a request and maps its ids (synchronous; throws RecommenderError). */
  resolve(req: RecommendRequest): ResolvedRequest {
    this.live();
    if (req === null || typeof req !== 'object' || Array.isArray(req)) throw badRequest('a request is an object { user | history | userVector, k?, exclude? }');
    const given = (['user', 'history', 'userVector'] as const).filter((f) => req[f] !== undefined && req[f] !== null);
    if (given.length !== 1) throw badRequest(`a request names exactly one of user, history, userVector (got ${given.length ? given.join(', ') : 'none'})`);
    const k = req.k ?? DEFAULT_K;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_K) throw badRequest(`k must be an integer in [1, ${MAX_K}], got ${JSON.stringify(req.k)}`);
    if (req.excludeSeen !== undefined && typeof req.excludeSeen !== 'boolean') throw badRequest('excludeSeen must be true or false');
    const excludeSeen = req.excludeSeen ?? true;
    const extra: number[] = [];
    if (req.exclude !== undefined) {
      if (!Array.isArray(req.exclude)) throw badRequest('exclude must be a list of item ids');
      for (const id of req.exclude) extra.push(this.itemIndex(id, 'exclude'));
    }
    const withSeen = (seen: ArrayLike<number>) => Int32Array.from(new Set([...(excludeSeen ? Array.from(seen) : []), ...extra]));
    if (req.user !== undefined && req.user !== null) {
      if (typeof req.user !== 'string') throw badRequest(`user must be a string id, got ${JSON.stringify(req.user)}`);
      const u = this.userOf.get(req.user);
      if (u === undefined) throw new RecommenderError('ERR_TOKENREC_UNKNOWN_USER', `unknown user '${req.user}'`);
      const history = this.userHistory(u);
      return { kind: 'user', user: req.user, userIndex: u, history, k, exclude: withSeen(history) };
    }
    if (req.history !== undefined && req.history !== null) {
      if (!Array.isArray(req.history)) throw badRequest('history must be a list of item ids');
      if (req.history.length === 0) throw badRequest('history must name at least one item');
      const history = Int32Array.from(req.history, (id) => this.itemIndex(id, 'history'));
      return { kind: 'history', userIndex: -1, history, k, exclude: withSeen(history) };
    }
    const v = req.userVector!;
    if (typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') throw badRequest(`userVector must be a list of ${this.dim} numbers`);
    if (v.length !== this.dim) throw badRequest(`userVector must have ${this.dim} values (the item-vector dimension), got ${v.length}`);
    const vector = new Float32Array(this.dim);
    for (let j = 0; j < this.dim; j++) {
      const x = v[j];
      if (typeof x !== 'number' || !Number.isFinite(x)) throw badRequest(`userVector[${j}] is not a finite number`);
      vector[j] = x;
    }
    return { kind: 'vector', userIndex: -1, history: new Int32Array(0), vector, k, exclude: Int32Array.from(extra) };
  }

  /** The most recent `historyCap` items, in order: what the prompt shows (deterministic). */
  private promptHistory(h: Int32Array): Int32Array {
    return h.length > this.historyCap ? h.subarray(h.length - this.historyCap) : h;
  }

  /** The fold-in context of the CF model, created once; a failed creation is retried by the next request. */
  private foldInContext(): Promise<FoldInContext> {
    this.live(); // never create one after dispose(): nothing would free it
    if (!this.foldInCtx) {
      // Items added after training have no place in the CF graph: fold-in uses the trained ones.
      // The loaded CF stage is itself a fold-in model (its numItems is the trained count).
      this.foldInCtx = FoldInContext.create(this.cf);
      this.foldInCtx.catch(() => {
        this.foldInCtx = null;
      });
    }
    return this.foldInCtx;
  }

  /** Codes (width of the user code table) for new users' histories: fold-in -> frozen user tokenizer. */
  private async newUserCodes(histories: Int32Array[], commit: boolean): Promise<Int32Array> {
    const trained = this.cf.numItems;
    const ctx = await this.foldInContext();
    // One fold-in call per history: the native fold-in seeds its negative sampling by the row's
    // position in the call, so a shared call would make a user's vector (and codes) depend on
    // which other requests happened to share its batch.
    const D = this.dim;
    const final = new Float32Array(histories.length * D);
    for (let b = 0; b < histories.length; b++) {
      const h = histories[b].filter((i) => i < trained);
      // Only items added after training: no CF signal, the zero vector (as fold-in gives an empty history).
      if (h.length === 0) continue;
      const f = await ctx.foldIn([h], this.cf.config.foldIn);
      final.set(f.final, b * D);
    }
    const raw = await this.userTok.encode(final, { backend: this.backend });
    return this.userCodes.complete(raw, final, commit);
  }

  /** z (B * dim) for resolved requests (user and history kinds; vector kind passes through). */
  private async queryVectors(reqs: ResolvedRequest[]): Promise<Float32Array> {
    const D = this.dim;
    const out = new Float32Array(reqs.length * D);
    const newUsers = reqs.map((r, b) => (r.kind === 'history' ? b : -1)).filter((b) => b >= 0);
    const newCodes = newUsers.length ? await this.newUserCodes(newUsers.map((b) => reqs[b].history), false) : undefined;
    const width = this.userCodes.width;
    const prompts: { b: number; tokens: number[] }[] = [];
    const items = this.itemCodes.asCodes();
    reqs.forEach((r, b) => {
      if (r.kind === 'vector') {
        out.set(r.vector!, b * D);
        return;
      }
      const row = r.kind === 'user' ? this.userCodes.row(r.userIndex) : newCodes!.subarray(newUsers.indexOf(b) * width, (newUsers.indexOf(b) + 1) * width);
      const userCodes: Codes = { K: width, L: this.userCodes.L, codes: row };
      const tokens = promptTokens(this.vocab, userCodes, items, { user: 0, history: this.promptHistory(r.history), target: -1 }, 'seen', 0);
      prompts.push({ b, tokens });
    });
    // Runs of similar prompt length: a run pads every prompt to its longest, and attention and
    // feed-forward cost grow with the padded length.
    prompts.sort((x, y) => x.tokens.length - y.tokens.length || x.b - y.b);
    const session = this.live();
    const queries = this.vocab.decoderQueryIds();
    for (const part of lengthRuns(prompts, this.batchSize)) {
      const p = padPrompts(part.map((x) => x.tokens));
      const dec = new Int32Array(p.batch * queries.length);
      for (let b = 0; b < p.batch; b++) dec.set(queries, b * queries.length);
      const res = await runOnnxT5(session, { inputIds: p.ids, attentionMask: p.mask, decoderInputIds: dec, batch: p.batch, encLen: p.length, decLen: queries.length });
      if (!res.z || res.z.length !== p.batch * D) throw new Error(`${this.dir}/backbone.onnx: no z output of ${D} values per user`);
      part.forEach((x, j) => out.set(res.z!.subarray(j * D, (j + 1) * D), x.b * D));
    }
    return out;
  }

  /** Runs validated requests: the ONNX runs in chunks, then one top-K call for the batch. */
  async runResolved(reqs: ResolvedRequest[]): Promise<Recommendation[]> {
    if (reqs.length === 0) return [];
    const z = await this.queryVectors(reqs);
    const kMax = Math.max(...reqs.map((r) => r.k));
    const exclude = toCsr(reqs.map((r) => r.exclude));
    this.live();
    const q = this.scoring === 'cosine-bias' ? biasedQueryRows(z, this.dim) : z;
    const res = await this.index.search(q, kMax, exclude, { backend: this.backend });
    return reqs.map((r, b) => {
      const items: RecommendedItem[] = [];
      for (let j = 0; j < Math.min(r.k, res.k); j++) {
        const i = res.ids[b * res.k + j];
        if (i < 0) break;
        items.push({ id: this.itemIds[i], index: i, score: res.scores[b * res.k + j] });
      }
      return r.user !== undefined ? { user: r.user, items } : { items };
    });
  }

  /** Recommendations for one request. */
  async recommend(req: RecommendRequest): Promise<Recommendation> {
    return (await this.recommendBatch([req]))[0];
  }

  /** Recommendations for many requests (validated first: a bad one fails the call before any work). */
  async recommendBatch(reqs: RecommendRequest[]): Promise<Recommendation[]> {
    if (!Array.isArray(reqs)) throw badRequest('recommendBatch takes a list of requests');
    const resolved = reqs.map((r, i) => {
      try {
        return this.resolve(r);
      } catch (e) {
        if (e instanceof RecommenderError && reqs.length > 1) e.message = `request ${i}: ${e.message}`;
        throw e;
      }
    });
    return this.runResolved(resolved);
  }

  /**
   * Streams recommendations for `users` (default: every user of the model, in index order),
   * `batchSize` users at a time. Memory stays bounded: one batch is being scored while the
   * previous one's top-K runs off the event loop.
   */
  async *scoreAll(users?: Iterable<string>, opts: { k?: number; batchSize?: number; excludeSeen?: boolean } = {}): AsyncGenerator<Recommendation> {
    const batch = opts.batchSize ?? 256;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batchSize must be a positive integer, got ${batch}`);
    const source: Iterable<string> = users ?? (function* (ids: string[]) { for (let u = 0; u < ids.length; u++) yield ids[u]; })(this.userIds);
    // Every batch gets a no-op handler at once: a batch that fails while the consumer is still
    // reading the previous one (or has stopped reading) must not be an unhandled rejection; the
    // failure still reaches the consumer through the await below.
    const start = (reqs: RecommendRequest[]) => {
      const p = this.recommendBatch(reqs);
      p.catch(() => undefined);
      return p;
    };
    let pending: Promise<Recommendation[]> | undefined;
    let chunk: RecommendRequest[] = [];
    for (const user of source) {
      chunk.push({ user, k: opts.k, excludeSeen: opts.excludeSeen });
      if (chunk.length === batch) {
        const next = start(chunk);
        chunk = [];
        if (pending) yield* await pending;
        pending = next;
      }
    }
    const last = chunk.length ? start(chunk) : undefined;
    if (pending) yield* await pending;
    if (last) yield* await last;
  }

  /**
   * Makes new items recommendable without retraining: `vectors` (n * dim, in the CF item space)
   * join the top-K index, and the frozen item tokenizer gives them codes so they can appear in
   * prompts. Returns their dense indices.
   */
  async addItems(vectors: Float32Array, ids: string[]): Promise<Int32Array> {
    this.live();
    if (!(vectors instanceof Float32Array)) throw badRequest('addItems: vectors must be a Float32Array');
    if (!Array.isArray(ids) || ids.length === 0) throw badRequest('addItems: ids must be a non-empty list');
    if (vectors.length !== ids.length * this.dim) throw badRequest(`addItems: ${ids.length} ids need ${ids.length * this.dim} values (dim ${this.dim}), got ${vectors.length}`);
    const fresh = new Set<string>();
    for (const id of ids) {
      if (typeof id !== 'string' || id === '') throw badRequest('addItems: ids must be non-empty strings');
      if (this.itemOf.has(id) || fresh.has(id)) throw new RecommenderError('ERR_TOKENREC_DUPLICATE_ID', `addItems: item '${id}' already exists`);
      fresh.add(id);
    }
    const raw = await this.itemTok.encode(vectors, { backend: this.backend }); // also rejects non-finite values
    // The index reads its copy off the event loop; cosine-bias rows carry the new items' bias.
    const copy = this.scoring === 'cosine-bias' ? biasedItemRows(vectors, this.dim, new Float32Array(ids.length).fill(this.newItemBias), this.llm.train.temperature) : Float32Array.from(vectors);
    await this.index.add(copy);
    this.itemCodes.append(await this.itemCodes.complete(raw, vectors, true));
    const first = this.itemIds.length;
    ids.forEach((id, j) => {
      this.itemIds.push(id);
      this.itemOf.set(id, first + j);
    });
    return Int32Array.from(ids, (_, j) => first + j);
  }

  /**
   * Serves a user unseen in training: its items give a fold-in vector, the frozen user
   * tokenizer its codes; later requests { user: id } use them. Returns its dense index.
   */
  async addUser(id: string, interactions: string[]): Promise<number> {
    this.live();
    if (typeof id !== 'string' || id === '') throw badRequest('addUser: the id must be a non-empty string');
    if (this.userOf.has(id)) throw new RecommenderError('ERR_TOKENREC_DUPLICATE_ID', `addUser: user '${id}' already exists`);
    if (!Array.isArray(interactions) || interactions.length === 0) throw badRequest('addUser: interactions must name at least one item');
    const history = Int32Array.from(interactions, (x) => this.itemIndex(x, 'addUser'));
    const codes = await this.newUserCodes([history], true);
    if (this.userOf.has(id)) throw new RecommenderError('ERR_TOKENREC_DUPLICATE_ID', `addUser: user '${id}' already exists`);
    this.userCodes.append(codes);
    const u = this.userIds.length;
    this.userIds.push(id);
    this.userOf.set(id, u);
    this.extraHistory.set(u, history);
    return u;
  }

  /** Frees the ONNX session, the index, the tokenizers and the fold-in context. Later calls fail with ERR_TOKENREC_DISPOSED. */
  async dispose(): Promise<void> {
    const s = this.session;
    if (!s) return;
    this.session = null;
    this.index.dispose();
    this.userTok.dispose();
    this.itemTok.dispose();
    const ctx = this.foldInCtx;
    this.foldInCtx = null;
    await s.dispose();
    if (ctx) (await ctx.catch(() => null))?.dispose();
  }
}

/**
 * Why the backbone runs on ONNX Runtime's CPU provider. onnxruntime-node lists 'cuda' among its
 * backends, but its CUDA provider is a separate library fetched by the package's install script
 * (not run here), and lib/onnx/session.ts creates CPU sessions only; with no usable device there
 * is nothing to accelerate either way.
 */
export function acceleratorReason(): string {
  const cuda = backendInfo().cuda;
  let lib = false;
  try {
    const base = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    lib = existsSync(join(base, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'));
  } catch {
    lib = false;
  }
  if (!cuda.available) return `CPU: no usable CUDA device (${cuda.reason})`;
  if (!lib) return 'CPU: this onnxruntime-node install has no CUDA execution provider library (libonnxruntime_providers_cuda.so)';
  return 'CPU: the session wrapper (lib/onnx/session.ts) creates CPU sessions only';
}

/** What the process runs on, for `/health` and the CLI. */
export function servingEnvironment(): { kernels: ReturnType<typeof backendInfo>; onnx: ReturnType<typeof OnnxSession.runtimeInfo> } {
  return { kernels: backendInfo(), onnx: OnnxSession.runtimeInfo() };
}
