// faiss-node as an optional alternative to the native top-K kernel (lib/retrieval/topk.ts).
//
// faiss-node is an optional dependency whose own install script is denied (it downloads from
// GitHub); scripts/build-faiss.sh builds its addon against Debian's faiss (libfaiss-dev). When
// the package or its addon is missing, faissAvailable() says why and FaissIndex throws
// "faiss backend is off: <reason>". TOKENREC_FAISS=off turns it off even when installed.
// Nothing else in tokenrec depends on it.
//
// Notes on faiss-node 0.5.1: it takes vectors as plain number[] (we convert, in chunks), its
// search runs synchronously on the calling thread (the event loop waits for it), and faiss's
// OpenMP thread count comes from OMP_NUM_THREADS when the addon loads (set
// OPENBLAS_NUM_THREADS=1 too, so BLAS does not start threads of its own inside OpenMP's).
import { createRequire } from 'node:module';
import type { Csr } from '../data/types.js';
import type { TopKResult } from './topk.js';
import { MAX_K } from './topk.js';

/**
 * 'cosine': IndexFlatIP over L2-normalised vectors (queries normalised per search); scores are
 * cosines, best first. 'ip': IndexFlatIP on raw vectors (dot products). 'l2': IndexFlatL2;
 * scores are squared L2 distances, nearest first.
 */
export type FaissMetric = 'cosine' | 'ip' | 'l2';

interface FaissSearchResult {
  distances: number[];
  labels: number[];
}
interface FaissNativeIndex {
  add(x: number[]): void;
  search(x: number[], k: number): FaissSearchResult;
  ntotal(): number;
  getDimension(): number;
}
interface FaissModule {
  IndexFlatIP: new (d: number) => FaissNativeIndex;
  IndexFlatL2: new (d: number) => FaissNativeIndex;
}

let loaded: { mod?: FaissModule; reason?: string } | undefined;

function load(): { mod?: FaissModule; reason?: string } {
  if (loaded) return loaded;
  if (process.env.TOKENREC_FAISS === 'off') {
    loaded = { reason: 'disabled by TOKENREC_FAISS=off' };
    return loaded;
  }
  const require = createRequire(import.meta.url);
  let path: string;
  try {
    path = require.resolve('faiss-node');
  } catch {
    loaded = { reason: 'faiss-node is not installed (it is an optional dependency: `npm install faiss-node@0.5.1 --ignore-scripts`, then `bash scripts/build-faiss.sh`)' };
    return loaded;
  }
  try {
    loaded = { mod: require(path) as FaissModule };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loaded = {
      reason:
        `faiss-node is installed but its native addon does not load (${msg}); build it with \`bash scripts/build-faiss.sh\` ` +
        '(needs `apt-get install libfaiss-dev libopenblas-dev`)',
    };
  }
  return loaded;
}

/** Whether the faiss backend can be used here, and if not, why. Never throws. */
export function faissAvailable(): { ok: boolean; reason?: string } {
  const l = load();
  return l.mod ? { ok: true } : { ok: false, reason: l.reason };
}

function faiss(): FaissModule {
  const l = load();
  if (!l.mod) throw Object.assign(new Error(`faiss backend is off: ${l.reason}`), { code: 'ERR_TOKENREC_FAISS_OFF' });
  return l.mod;
}

// Rows normalised as the native kernel does (x / float(sqrt(sum x^2)) in float32), so both
// backends search the same vectors; zero rows stay zero. Returned as number[] for faiss-node.
function toNumbers(v: Float32Array, dim: number, normalize: boolean): number[] {
  const out = new Array<number>(v.length);
  for (let r = 0; r < v.length; r += dim) {
    let n = 1;
    if (normalize) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += v[r + d] * v[r + d];
      n = Math.fround(Math.sqrt(s));
    }
    for (let d = 0; d < dim; d++) {
      const x = v[r + d];
      if (!Number.isFinite(x)) throw new RangeError(`vector ${r / dim} has a non-finite value at [${d}] (${x})`);
      out[r + d] = normalize ? (n > 0 ? Math.fround(x / n) : 0) : x;
    }
  }
  return out;
}

export interface FaissIndexOptions {
  dim: number;
  metric?: FaissMetric;
}

/**
 * A faiss flat (exact) index with ItemIndex's search interface. Results follow faiss's order
 * within ties (not necessarily the smaller index first) and its BLAS rounding, so they agree
 * with the native kernel up to ties and ~1e-6 in score.
 */
export class FaissIndex {
  readonly dim: number;
  readonly metric: FaissMetric;
  #index: FaissNativeIndex | undefined;

  constructor(opts: FaissIndexOptions) {
    const { dim } = opts;
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`dim must be an integer >= 1, got ${dim}`);
    const metric = opts.metric ?? 'cosine';
    if (metric !== 'cosine' && metric !== 'ip' && metric !== 'l2') {
      throw new TypeError(`metric must be 'cosine', 'ip' or 'l2', got '${String(metric)}'`);
    }
    const f = faiss();
    this.dim = dim;
    this.metric = metric;
    this.#index = metric === 'l2' ? new f.IndexFlatL2(dim) : new f.IndexFlatIP(dim);
  }

  static async create(vectors: Float32Array, opts: FaissIndexOptions): Promise<FaissIndex> {
    const ix = new FaissIndex(opts);
    await ix.add(vectors);
    return ix;
  }

  /** Appends items ((n * dim) row-major); ids continue from size. */
  async add(vectors: Float32Array): Promise<void> {
    const ix = this.#live();
    if (!(vectors instanceof Float32Array)) throw new TypeError('vectors must be a Float32Array');
    if (vectors.length % this.dim !== 0) throw new RangeError(`vectors.length (${vectors.length}) is not a multiple of dim (${this.dim})`);
    // Chunks keep the temporary number[] small (8 bytes per value).
    const rowsPerChunk = Math.max(1, Math.floor((1 << 20) / this.dim));
    for (let r = 0; r < vectors.length / this.dim; r += rowsPerChunk) {
      const part = vectors.subarray(r * this.dim, Math.min(vectors.length, (r + rowsPerChunk) * this.dim));
      ix.add(toNumbers(part, this.dim, this.metric === 'cosine'));
    }
  }

  get size(): number {
    return this.#live().ntotal();
  }

  /**
   * The k best items per query, as ItemIndex.search: (B, min(k, size)) ids and scores, -1 /
   * -Infinity (+Infinity for 'l2') padding when exclusions leave too few items. Runs synchronously.
   */
  async search(queries: Float32Array, k: number, exclude?: Csr): Promise<TopKResult> {
    const ix = this.#live();
    if (!(queries instanceof Float32Array)) throw new TypeError('queries must be a Float32Array');
    if (queries.length % this.dim !== 0) throw new RangeError(`queries.length (${queries.length}) is not a multiple of dim (${this.dim})`);
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new RangeError(`k must be an integer in [1, ${MAX_K}], got ${k}`);
    const B = queries.length / this.dim;
    const N = ix.ntotal();
    const kout = Math.min(k, N);
    const ids = new Int32Array(B * kout);
    const scores = new Float32Array(B * kout);
    if (B === 0 || kout === 0) return { ids, scores, k: kout };
    if (exclude !== undefined && exclude.ptr.length !== B + 1) {
      throw new RangeError(`exclude has ${exclude.ptr.length - 1} rows but there are ${B} queries`);
    }
    // faiss has no per-query filter here: ask for k + (largest exclusion list) and drop them.
    let extra = 0;
    const sets: Set<number>[] = [];
    for (let b = 0; b < B && exclude; b++) {
      const s = new Set<number>();
      for (let e = exclude.ptr[b]; e < exclude.ptr[b + 1]; e++) {
        const j = exclude.idx[e];
        if (!Number.isInteger(j) || j < 0 || j >= N) throw new RangeError(`exclude.idx[${e}] = ${j} (query ${b}) is outside [0, ${N})`);
        s.add(j);
      }
      sets.push(s);
      extra = Math.max(extra, s.size);
    }
    const kq = Math.min(N, kout + extra);
    const r = ix.search(toNumbers(queries, this.dim, this.metric === 'cosine'), kq);
    const pad = this.metric === 'l2' ? Infinity : -Infinity;
    for (let b = 0; b < B; b++) {
      let c = 0;
      for (let i = 0; i < kq && c < kout; i++) {
        const j = r.labels[b * kq + i];
        if (j < 0 || (sets.length && sets[b].has(j))) continue;
        ids[b * kout + c] = j;
        scores[b * kout + c] = r.distances[b * kq + i];
        c++;
      }
      for (; c < kout; c++) {
        ids[b * kout + c] = -1;
        scores[b * kout + c] = pad;
      }
    }
    return { ids, scores, k: kout };
  }

  /** Drops the reference to the faiss index (freed by the garbage collector). */
  dispose(): void {
    this.#index = undefined;
  }
  get disposed(): boolean {
    return this.#index === undefined;
  }

  #live(): FaissNativeIndex {
    if (!this.#index) throw Object.assign(new Error('FaissIndex was disposed'), { code: 'ERR_TOKENREC_DISPOSED' });
    return this.#index;
  }
}
