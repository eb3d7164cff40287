// Writes a leave-one-out split to a directory of plain files, and reads it back, so that other
// libraries (or an independent reference implementation) train and evaluate on exactly the split
// tokenrec uses. Layout (dense 0-based ids, tab-separated, no header, `\n` line ends):
//   train.tsv    `user<TAB>item`: training interactions of users that take part in training,
//                each user's items in sequence order (oldest first)
//   unseen.tsv   the same for users held out of training (--unseen): the history they bring as
//                new users; written only when there are such users
//   valid.tsv    `user<TAB>item`: one validation target per user that has one
//   test.tsv     `user<TAB>item`: one test target per user that has one
//   users.txt    line u (0-based) = the dataset's own id of dense user u
//   items.txt    line i = the dataset's own id of dense item i
//   meta.json    counts, the split's options and report, the list of held-out users, and the
//                split's fingerprint (lib/io/manifest.ts splitFingerprint)
// Evaluation protocol the files are meant for (PAPER.md §2): full ranking over all items, the
// user's training items excluded (and the validation item for the test target).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { splitFingerprint } from '../io/manifest.js';
import type { Dataset, Split, SplitReport } from './types.js';

export const SPLIT_DIR_FORMAT = 'tokenrec-split/1';

export interface SplitDirMeta {
  format: string;
  dataset: string;
  users: number;
  items: number;
  trainInteractions: number;
  unseenInteractions: number;
  validTargets: number;
  testTargets: number;
  /** Dense ids of users held out of training (their history is in unseen.tsv). */
  unseenUsers: number[];
  report: SplitReport;
  fingerprint: string;
  files: Record<string, string>;
}

function pairs(lines: string[], u: number, items: ArrayLike<number>): number {
  for (let k = 0; k < items.length; k++) lines.push(`${u}\t${items[k]}\n`);
  return items.length;
}

/** Writes `split` (of `dataset`) to `dir` (created if needed); returns the meta written. */
export function writeSplitDir(dir: string, dataset: Dataset, split: Split): SplitDirMeta {
  if (dataset.users.length !== split.numUsers || dataset.items.length !== split.numItems) {
    throw new Error(`the split has ${split.numUsers} users / ${split.numItems} items but the dataset ${dataset.users.length} / ${dataset.items.length}`);
  }
  for (const [what, ids] of [['user', dataset.users], ['item', dataset.items]] as const) {
    const bad = ids.findIndex((s) => /[\r\n]/.test(s));
    if (bad >= 0) throw new Error(`${what} id ${JSON.stringify(ids[bad])} contains a line break; it cannot be written one per line`);
  }
  const train: string[] = [];
  const unseen: string[] = [];
  const valid: string[] = [];
  const test: string[] = [];
  let nTrain = 0, nUnseen = 0;
  for (let u = 0; u < split.numUsers; u++) {
    if (split.heldOut[u]) nUnseen += pairs(unseen, u, split.train[u]);
    else nTrain += pairs(train, u, split.train[u]);
    if (split.valid[u] >= 0) valid.push(`${u}\t${split.valid[u]}\n`);
    if (split.test[u] >= 0) test.push(`${u}\t${split.test[u]}\n`);
  }
  const files: Record<string, string> = {
    'train.tsv': 'user<TAB>item, training interactions of users in training, sequence order',
    'valid.tsv': 'user<TAB>item, validation target',
    'test.tsv': 'user<TAB>item, test target',
    'users.txt': "line u = the dataset's id of dense user u",
    'items.txt': "line i = the dataset's id of dense item i",
  };
  writeFileAtomic(join(dir, 'train.tsv'), train.join(''));
  if (split.unseenUsers.length > 0) {
    files['unseen.tsv'] = 'user<TAB>item, history of users held out of training';
    writeFileAtomic(join(dir, 'unseen.tsv'), unseen.join(''));
  }
  writeFileAtomic(join(dir, 'valid.tsv'), valid.join(''));
  writeFileAtomic(join(dir, 'test.tsv'), test.join(''));
  writeFileAtomic(join(dir, 'users.txt'), dataset.users.map((s) => s + '\n').join(''));
  writeFileAtomic(join(dir, 'items.txt'), dataset.items.map((s) => s + '\n').join(''));
  const meta: SplitDirMeta = {
    format: SPLIT_DIR_FORMAT,
    dataset: dataset.name,
    users: split.numUsers,
    items: split.numItems,
    trainInteractions: nTrain,
    unseenInteractions: nUnseen,
    validTargets: valid.length,
    testTargets: test.length,
    unseenUsers: Array.from(split.unseenUsers),
    report: split.report,
    fingerprint: splitFingerprint(split),
    files,
  };
  // meta.json last: its presence says the directory is complete.
  writeFileAtomic(join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  return meta;
}

function readPairs(path: string, U: number, I: number): [number, number][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: [number, number][] = [];
  const ls = text.split('\n');
  for (let n = 0; n < ls.length; n++) {
    if (ls[n] === '') continue;
    const f = ls[n].split('\t');
    const u = Number(f[0]), i = Number(f[1]);
    if (f.length !== 2 || !Number.isInteger(u) || !Number.isInteger(i) || u < 0 || u >= U || i < 0 || i >= I) {
      throw new Error(`${path}:${n + 1}: expected 'user<TAB>item' with user in [0, ${U}) and item in [0, ${I}), got '${ls[n].slice(0, 80)}'`);
    }
    out.push([u, i]);
  }
  return out;
}

/** Reads a directory written by writeSplitDir back into a Split and the ids; checks the fingerprint. */
export function readSplitDir(dir: string): { split: Split; users: string[]; items: string[]; meta: SplitDirMeta } {
  const metaPath = join(dir, 'meta.json');
  let meta: SplitDirMeta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as SplitDirMeta;
  } catch (e) {
    throw new Error(`${metaPath}: cannot read the split's meta.json (${(e as Error).message})`);
  }
  if (meta.format !== SPLIT_DIR_FORMAT) throw new Error(`${metaPath}: not a tokenrec split directory (format '${meta.format}')`);
  const U = meta.users, I = meta.items;
  const heldOut = new Uint8Array(U);
  for (const u of meta.unseenUsers) heldOut[u] = 1;
  const lists: number[][] = Array.from({ length: U }, () => []);
  for (const [u, i] of readPairs(join(dir, 'train.tsv'), U, I)) lists[u].push(i);
  if (meta.unseenUsers.length) for (const [u, i] of readPairs(join(dir, 'unseen.tsv'), U, I)) lists[u].push(i);
  const valid = new Int32Array(U).fill(-1);
  const test = new Int32Array(U).fill(-1);
  for (const [u, i] of readPairs(join(dir, 'valid.tsv'), U, I)) valid[u] = i;
  for (const [u, i] of readPairs(join(dir, 'test.tsv'), U, I)) test[u] = i;
  const trainUsers: number[] = [];
  const unseenUsers: number[] = [];
  for (let u = 0; u < U; u++) (heldOut[u] ? unseenUsers : trainUsers).push(u);
  const split: Split = {
    numUsers: U,
    numItems: I,
    train: lists.map((l) => Int32Array.from(l)),
    valid,
    test,
    heldOut,
    trainUsers: Int32Array.from(trainUsers),
    unseenUsers: Int32Array.from(unseenUsers),
    report: meta.report,
  };
  const fp = splitFingerprint(split);
  if (fp !== meta.fingerprint) throw new Error(`${dir}: the files do not match meta.json's fingerprint (edited or truncated?)`);
  const ids = (f: string, n: number) => {
    const l = readFileSync(join(dir, f), 'utf8').split('\n');
    if (l[l.length - 1] === '') l.pop();
    if (l.length !== n) throw new Error(`${join(dir, f)}: ${l.length} lines, meta.json says ${n}`);
    return l;
  };
  return { split, users: ids('users.txt', U), items: ids('items.txt', I), meta };
}
