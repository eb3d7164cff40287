// ids.json of a model directory: the dataset's own user and item ids (dense index -> string id)
// and the histories of users held out of training, so that serving maps ids without the
// training data. Written with the cf stage and recorded (sha256) in its files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, Split } from '../data/types.js';
import { writeFileAtomic } from './atomic.js';

export const IDS_FILE = 'ids.json';

export interface ModelIdsFile {
  fingerprint: string;
  users: string[];
  items: string[];
  /** [user index, history item indices] of every unseen (held-out) user. */
  unseen: [number, number[]][];
}

export function writeModelIds(dir: string, dataset: Dataset, split: Split, fingerprint: string): string {
  const body: ModelIdsFile = {
    fingerprint,
    users: dataset.users,
    items: dataset.items,
    unseen: Array.from(split.unseenUsers, (u) => [u, Array.from(split.train[u])] as [number, number[]]),
  };
  writeFileAtomic(join(dir, IDS_FILE), JSON.stringify(body));
  return IDS_FILE;
}

export function readModelIds(path: string): ModelIdsFile {
  let j: ModelIdsFile;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as ModelIdsFile;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(j.users) || !Array.isArray(j.items) || !Array.isArray(j.unseen) || typeof j.fingerprint !== 'string') {
    throw new Error(`${path}: malformed (expected fingerprint, users, items, unseen)`);
  }
  return j;
}
