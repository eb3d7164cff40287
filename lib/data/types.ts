// Core data types shared by every stage. Ids are dense 0-based integers; the maps back to the
// dataset's own ids are kept on the Dataset.

/** Interactions after loading: one sequence of item indices per user, oldest first. */
export interface Dataset {
  /** A name for messages and manifests (file name without extensions by default). */
  name: string;
  /** users[u] is the dataset's own id of dense user u. */
  users: string[];
  /** items[i] is the dataset's own id of dense item i. */
  items: string[];
  /** sequences[u]: item indices of user u, in timestamp order when the file had timestamps, else file order. */
  sequences: Int32Array[];
  /** Repeated (user, item) interactions dropped while loading (the first occurrence is kept). */
  duplicatesDropped: number;
  /** Format the file was read as. */
  format: DataFormat;
}

export type DataFormat = 'openp5' | 'pairs' | 'recbole' | 'csv' | 'tsv';

/**
 * Leave-one-out split (PAPER.md §2): per user the last item is the test target, the one before
 * the validation target, the rest training. Users held out as "unseen" keep their targets but
 * take part in no training stage; their history is `train[u]` all the same (the items a new user
 * brings when it arrives).
 */
export interface Split {
  numUsers: number;
  numItems: number;
  /** train[u]: training items of user u (its history), in sequence order. */
  train: Int32Array[];
  /** valid[u]: validation target of u, or -1 when u has too few interactions for one. */
  valid: Int32Array;
  /** test[u]: test target of u, or -1 when u has too few interactions for one. */
  test: Int32Array;
  /** heldOut[u] = 1 when u is an unseen user (excluded from training). */
  heldOut: Uint8Array;
  /** Users that take part in training, ascending. */
  trainUsers: Int32Array;
  /** Unseen users, ascending. */
  unseenUsers: Int32Array;
  /** What happened to users too short for a full split (see splitLeaveOneOut). */
  report: SplitReport;
}

export interface SplitReport {
  users: number;
  /** Users with >= 3 interactions: train / valid / test. */
  full: number;
  /** Users with exactly 2 interactions: 1 train item and a test target, no validation target. */
  noValid: number;
  /** Users with 1 interaction: training only, no targets. */
  trainOnly: number;
  /** Users with no interaction at all (possible only for hand-built datasets). */
  empty: number;
  unseen: number;
  unseenFraction: number;
  seed: number;
}

/** Compressed sparse rows: row r holds idx[ptr[r] .. ptr[r+1]). */
export interface Csr {
  ptr: Int32Array;
  idx: Int32Array;
}

/** Packs per-row lists into CSR. */
export function toCsr(rows: ArrayLike<number>[] | Int32Array[]): Csr {
  const ptr = new Int32Array(rows.length + 1);
  for (let r = 0; r < rows.length; r++) ptr[r + 1] = ptr[r] + rows[r].length;
  const idx = new Int32Array(ptr[rows.length]);
  for (let r = 0; r < rows.length; r++) idx.set(rows[r] as ArrayLike<number>, ptr[r]);
  return { ptr, idx };
}
