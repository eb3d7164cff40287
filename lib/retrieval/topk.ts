// Exact top-K retrieval over a long-lived native item index (native/src/cpu/topk.cc,
// native/src/cuda/topk.cu, native/binding/topk_binding.cc).
//
// Result order: score descending; ties (bit-identical scores, e.g. duplicate item vectors) go to
// the smaller item index. Scores do not depend on an item's position, the batch, the thread count
// or the device, so results are reproducible. Each row has min(k, size) columns; a query left
// with fewer items after its exclusions is padded at the end with id -1 and score -Infinity.
import { nativeFunction, resolveBackend, addon, type Backend } from '../native/addon.js';
import type { Csr } from '../data/types.js';

export type Similarity = 'cosine' | 'dot';

/** Largest k accepted (the GPU kernel keeps each query's running top-k in shared memory). */
export const MAX_K = 1024;

export interface TopKResult {
  /** (B * k) item indices, row-major: row b holds query b's results, best first; -1 pads. */
  ids: Int32Array;
  /** (B * k) scores matching `ids`; -Infinity pads. */
  scores: Float32Array;
  /** Columns per row: min(requested k, index size). */
  k: number;
}

export interface ItemIndexOptions {
  dim: number;
  /**
   * 'cosine' (default): items are L2-normalised once at load, queries at each search; a zero
   * vector scores 0 against everything. 'dot': raw inner products, which keep item-norm effects
   * such as popularity.
   */
  similarity?: Similarity;
}

export interface SearchOptions {
  /** 'auto' (default) uses CUDA when a device is usable; TOKENREC_BACKEND overrides 'auto'. */
  backend?: Backend;
}

interface NativeItemIndex {
  add(vectors: Float32Array): Promise<void>;
  search(o: {
    queries: Float32Array;
    k: number;
    excludePtr?: Int32Array;
    excludeIdx?: Int32Array;
    backend: 'cpu' | 'cuda';
  }): Promise<TopKResult>;
  dispose(): void;
  readonly size: number;
  readonly dim: number;
  readonly similarity: Similarity;
  readonly disposed: boolean;
}

type NativeItemIndexCtor = new (o: { dim: number; similarity: Similarity }) => NativeItemIndex;

function checkVectors(name: string, v: unknown, dim: number): asserts v is Float32Array {
  if (!(v instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array`);
  if (v.length % dim !== 0) throw new RangeError(`${name}.length (${v.length}) is not a multiple of dim (${dim})`);
}

/**
 * Item vectors held in native memory for repeated exact top-K search.
 *
 * The typed arrays passed to add() and search() are read in place, off the event loop: do not
 * modify them until the returned Promise settles. Searches wait for earlier add() calls, so a
 * search issued after add() sees the added items. dispose() frees the items once the native calls
 * already started have finished; a search still waiting for an add() then fails as disposed.
 */
export class ItemIndex {
  readonly #native: NativeItemIndex;
  /** The last add() (searches start after it), and how many adds have not settled yet. */
  #adding: Promise<void> = Promise.resolve();
  #pendingAdds = 0;

  constructor(opts: ItemIndexOptions) {
    const { dim } = opts;
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`dim must be an integer >= 1, got ${dim}`);
    const similarity = opts.similarity ?? 'cosine';
    if (similarity !== 'cosine' && similarity !== 'dot') {
      throw new TypeError(`similarity must be 'cosine' or 'dot', got '${String(similarity)}'`);
    }
    addon(); // a clear error when the addon is not built
    const Ctor = nativeFunction<never>('ItemIndex') as unknown as NativeItemIndexCtor;
    this.#native = new Ctor({ dim, similarity });
  }

  /** Builds an index holding `vectors` ((n * dim) row-major; item i is row i). */
  static async create(vectors: Float32Array, opts: ItemIndexOptions): Promise<ItemIndex> {
    const ix = new ItemIndex(opts);
    await ix.add(vectors);
    return ix;
  }

  /** Appends items without rebuilding; their ids continue from the current size. */
  add(vectors: Float32Array): Promise<void> {
    try {
      this.#live();
      checkVectors('vectors', vectors, this.dim);
    } catch (e) {
      return Promise.reject(e);
    }
    this.#pendingAdds++;
    const next = this.#adding
      .catch(() => undefined)
      .then(() => this.#live().add(vectors))
      .finally(() => {
        this.#pendingAdds--;
      });
    this.#adding = next;
    return next;
  }

  /**
   * The k best items for each of the B queries ((B * dim) row-major). `exclude` (CSR with B rows)
   * lists items to leave out per query (e.g. a user's history); out-of-range ids are errors.
   */
  async search(queries: Float32Array, k: number, exclude?: Csr, opts: SearchOptions = {}): Promise<TopKResult> {
    this.#live();
    checkVectors('queries', queries, this.dim);
    if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new RangeError(`k must be an integer in [1, ${MAX_K}], got ${k}`);
    const B = queries.length / this.dim;
    if (exclude !== undefined) {
      if (!(exclude.ptr instanceof Int32Array) || !(exclude.idx instanceof Int32Array)) {
        throw new TypeError('exclude must be a CSR { ptr: Int32Array, idx: Int32Array }');
      }
      if (exclude.ptr.length !== B + 1) {
        throw new RangeError(`exclude has ${exclude.ptr.length - 1} rows but there are ${B} queries`);
      }
    }
    const backend = resolveBackend(opts.backend);
    const o = { queries, k, excludePtr: exclude?.ptr, excludeIdx: exclude?.idx, backend };
    // Started at once when no add() is pending (so a dispose() right after cannot cancel it).
    if (this.#pendingAdds === 0) return this.#native.search(o);
    await this.#adding.catch(() => undefined);
    return this.#live().search(o);
  }

  /** Number of items (after the add() calls that have completed). */
  get size(): number {
    return this.#live().size;
  }
  get dim(): number {
    return this.#native.dim;
  }
  get similarity(): Similarity {
    return this.#native.similarity;
  }
  get disposed(): boolean {
    return this.#native.disposed;
  }

  /** Frees the native item matrix (after calls already in flight finish). Later calls throw. */
  dispose(): void {
    this.#native.dispose();
  }

  #live(): NativeItemIndex {
    if (this.#native.disposed) {
      throw Object.assign(new Error('ItemIndex was disposed'), { code: 'ERR_TOKENREC_DISPOSED' });
    }
    return this.#native;
  }
}

/** Row b of a result as arrays (convenience for small outputs and tests). */
export function resultRow(r: TopKResult, b: number): { ids: number[]; scores: number[] } {
  const s = b * r.k;
  return { ids: Array.from(r.ids.subarray(s, s + r.k)), scores: Array.from(r.scores.subarray(s, s + r.k)) };
}
