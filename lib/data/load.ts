// Interaction loaders. gzip is transparent (by magic bytes, whatever the name). Supported:
//   openp5   `user item1 item2 ...` per line (OpenP5 / TokenRec user_sequence.txt), string ids
//   pairs    `user item` per line (SASRec style), whitespace separated
//   recbole  RecBole atomic .inter: tab-separated, header of `name:type` fields
//   csv/tsv  a header row naming the user and item (and optional timestamp) columns
// Ids are remapped to dense 0-based integers in order of first appearance; both maps are kept.
// A repeated (user, item) pair keeps its first occurrence (after ordering by time) and is counted.
// Order: by timestamp when the file has one (stable: ties keep file order), else file order.
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { DataFormat, Dataset } from './types.js';

export interface LoadOptions {
  /** Format; detected from the name and the content when omitted. */
  format?: DataFormat;
  /** csv/tsv/recbole: name of the user column (default: detected from common names). */
  userColumn?: string;
  /** csv/tsv/recbole: name of the item column. */
  itemColumn?: string;
  /** csv/tsv/recbole: name of the timestamp column; '' disables timestamp ordering. */
  timeColumn?: string;
  /** Name of the dataset (default: the file name without extensions). */
  name?: string;
}

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

const USER_NAMES = ['user_id', 'userid', 'user', 'uid', 'reviewerid', 'customer_id', 'visitorid'];
const ITEM_NAMES = ['item_id', 'itemid', 'item', 'iid', 'movie_id', 'movieid', 'asin', 'product_id', 'track_id', 'artist_id'];
const TIME_NAMES = ['timestamp', 'time', 'ts', 'unixreviewtime', 'datetime', 'date'];

/** Reads a file as text, gunzipping when it starts with the gzip magic bytes; strips a BOM. */
export function readText(path: string): string {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new DataError(`${path}: looks gzip-compressed but does not decompress (${(e as Error).message})`);
    }
  }
  let text = buf.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

/** Splits text into lines, accepting \n and \r\n. A trailing empty line is dropped. */
function lines(text: string): string[] {
  const out = text.split(/\r?\n/);
  if (out.length && out[out.length - 1] === '') out.pop();
  return out;
}

const GENERIC_NAMES = new Set(['user_sequence', 'train', 'test', 'ratings', 'interactions', 'data', 'inter']);

/** Dataset name from a path: the file name without extensions, or the folder's for generic names. */
function datasetName(path: string): string {
  const n = basename(path).replace(/\.gz$/i, '').replace(/\.(txt|csv|tsv|inter|dat)$/i, '');
  return GENERIC_NAMES.has(n.toLowerCase()) ? basename(dirname(resolve(path))) || n : n;
}

/** Guesses the format from the file name and the first lines. */
export function detectFormat(path: string, text: string): DataFormat {
  const name = basename(path).toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.inter')) return 'recbole';
  if (name.endsWith('.csv')) return 'csv';
  if (name.endsWith('.tsv')) return 'tsv';
  const sample = lines(text.slice(0, 1 << 16)).filter((l) => l.trim() !== '').slice(0, 200);
  if (sample.length === 0) throw new DataError(`${path}: the file is empty`);
  const first = sample[0];
  if (first.includes('\t') && /^[^\t:]+:(token|float|token_seq|float_seq)\b/.test(first)) return 'recbole';
  if (first.includes(',') && !/\s/.test(first.replace(/,/g, ''))) return 'csv';
  const counts = sample.map((l) => l.trim().split(/\s+/).length);
  // Only `user item` lines, and some user on more than one line: pair format.
  if (counts.every((c) => c === 2)) return 'pairs';
  return 'openp5';
}

interface RawRow {
  user: string;
  item: string;
  time: number;
  order: number;
}

function parseOpenP5(path: string, text: string): { rows: RawRow[]; emptyUsers: string[] } {
  const rows: RawRow[] = [];
  const emptyUsers: string[] = [];
  const ls = lines(text);
  for (let i = 0; i < ls.length; i++) {
    const t = ls[i].trim();
    if (t === '') continue;
    const f = t.split(/\s+/);
    if (f.length === 1) {
      emptyUsers.push(f[0]);
      continue;
    }
    for (let k = 1; k < f.length; k++) rows.push({ user: f[0], item: f[k], time: 0, order: rows.length });
  }
  return { rows, emptyUsers };
}

function parsePairs(path: string, text: string): RawRow[] {
  const rows: RawRow[] = [];
  const ls = lines(text);
  for (let i = 0; i < ls.length; i++) {
    const t = ls[i].trim();
    if (t === '') continue;
    const f = t.split(/\s+/);
    if (f.length !== 2) throw new DataError(`${path}:${i + 1}: expected 'user item' (2 fields), found ${f.length} fields: '${t.slice(0, 80)}'`);
    rows.push({ user: f[0], item: f[1], time: 0, order: rows.length });
  }
  return rows;
}

function splitCsvLine(line: string, sep: string): string[] {
  if (sep !== ',' || !line.includes('"')) return line.split(sep);
  // Minimal RFC 4180 quoting: "a,b" and "" inside quotes.
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function findColumn(header: string[], explicit: string | undefined, candidates: string[], what: string, path: string, required: boolean): number {
  const norm = header.map((h) => h.trim().toLowerCase());
  if (explicit !== undefined) {
    if (explicit === '') return -1;
    const i = norm.indexOf(explicit.toLowerCase());
    if (i < 0) throw new DataError(`${path}: no column named '${explicit}' for the ${what} (columns: ${header.join(', ')})`);
    return i;
  }
  for (const c of candidates) {
    const i = norm.indexOf(c);
    if (i >= 0) return i;
  }
  if (required) {
    throw new DataError(`${path}: cannot tell which column holds the ${what} (columns: ${header.join(', ')}); name it with --${what}-col`);
  }
  return -1;
}

function parseTable(path: string, text: string, sep: string, opts: LoadOptions, recbole: boolean): { rows: RawRow[]; timed: boolean } {
  const ls = lines(text);
  let h = 0;
  while (h < ls.length && ls[h].trim() === '') h++;
  if (h >= ls.length) throw new DataError(`${path}: the file is empty`);
  // RecBole headers are `name:type`; keep the name.
  const header = splitCsvLine(ls[h], sep).map((c) => (recbole ? c.split(':')[0] : c).trim());
  const ui = findColumn(header, opts.userColumn, USER_NAMES, 'user', path, true);
  const ii = findColumn(header, opts.itemColumn, ITEM_NAMES, 'item', path, true);
  const ti = findColumn(header, opts.timeColumn, TIME_NAMES, 'time', path, false);
  if (ui === ii) throw new DataError(`${path}: the user and item columns are the same column ('${header[ui]}')`);
  const rows: RawRow[] = [];
  for (let i = h + 1; i < ls.length; i++) {
    if (ls[i].trim() === '') continue;
    const f = splitCsvLine(ls[i], sep);
    const need = Math.max(ui, ii, ti) + 1;
    if (f.length < need) throw new DataError(`${path}:${i + 1}: expected at least ${need} fields, found ${f.length}`);
    const user = f[ui].trim();
    const item = f[ii].trim();
    if (user === '' || item === '') throw new DataError(`${path}:${i + 1}: empty ${user === '' ? 'user' : 'item'} id`);
    let time = 0;
    if (ti >= 0) {
      const raw = f[ti].trim();
      time = Number(raw);
      if (raw === '' || !Number.isFinite(time)) {
        const parsed = Date.parse(raw);
        if (!Number.isFinite(parsed)) throw new DataError(`${path}:${i + 1}: timestamp '${raw}' in column '${header[ti]}' is not a number or a date`);
        time = parsed;
      }
    }
    rows.push({ user, item, time, order: rows.length });
  }
  return { rows, timed: ti >= 0 };
}

/** Loads an interactions file into a Dataset (see the file header for formats and rules). */
export function loadDataset(path: string, opts: LoadOptions = {}): Dataset {
  const text = readText(path);
  const format = opts.format ?? detectFormat(path, text);
  let rows: RawRow[];
  let timed = false;
  let emptyUsers: string[] = [];
  switch (format) {
    case 'openp5': {
      const r = parseOpenP5(path, text);
      rows = r.rows;
      emptyUsers = r.emptyUsers;
      break;
    }
    case 'pairs':
      rows = parsePairs(path, text);
      break;
    case 'recbole': {
      const r = parseTable(path, text, '\t', opts, true);
      rows = r.rows;
      timed = r.timed;
      break;
    }
    case 'csv':
    case 'tsv': {
      const r = parseTable(path, text, format === 'csv' ? ',' : '\t', opts, false);
      rows = r.rows;
      timed = r.timed;
      break;
    }
    default:
      throw new DataError(`unknown format '${format as string}' (openp5, pairs, recbole, csv, tsv)`);
  }
  if (rows.length === 0) throw new DataError(`${path}: no interactions found`);
  return buildDataset(opts.name ?? datasetName(path), format, rows, timed, emptyUsers);
}

function buildDataset(name: string, format: DataFormat, rows: RawRow[], timed: boolean, emptyUsers: string[]): Dataset {
  const userIndex = new Map<string, number>();
  const itemIndex = new Map<string, number>();
  const users: string[] = [];
  const items: string[] = [];
  const perUser: RawRow[][] = [];
  for (const r of rows) {
    let u = userIndex.get(r.user);
    if (u === undefined) {
      u = users.length;
      userIndex.set(r.user, u);
      users.push(r.user);
      perUser.push([]);
    }
    if (!itemIndex.has(r.item)) {
      itemIndex.set(r.item, items.length);
      items.push(r.item);
    }
    perUser[u].push(r);
  }
  for (const e of emptyUsers) {
    if (!userIndex.has(e)) {
      userIndex.set(e, users.length);
      users.push(e);
      perUser.push([]);
    }
  }
  let duplicatesDropped = 0;
  const sequences = perUser.map((list) => {
    if (timed) list.sort((a, b) => a.time - b.time || a.order - b.order);
    const seen = new Set<number>();
    const seq: number[] = [];
    for (const r of list) {
      const i = itemIndex.get(r.item)!;
      if (seen.has(i)) {
        duplicatesDropped++;
        continue;
      }
      seen.add(i);
      seq.push(i);
    }
    return Int32Array.from(seq);
  });
  return { name, users, items, sequences, duplicatesDropped, format };
}

/** Builds a Dataset from in-memory sequences of string ids (tests, synthetic data, APIs). */
export function datasetFromSequences(name: string, seqs: Record<string, string[]> | [string, string[]][]): Dataset {
  const entries = Array.isArray(seqs) ? seqs : Object.entries(seqs);
  const rows: RawRow[] = [];
  const empty: string[] = [];
  for (const [u, list] of entries) {
    if (list.length === 0) empty.push(u);
    for (const i of list) rows.push({ user: u, item: i, time: 0, order: rows.length });
  }
  if (rows.length === 0) throw new DataError(`${name}: no interactions`);
  return buildDataset(name, 'openp5', rows, false, empty);
}

export interface DatasetStats {
  name: string;
  format: DataFormat;
  users: number;
  items: number;
  interactions: number;
  density: number;
  perUser: { min: number; median: number; max: number; mean: number };
  perItem: { min: number; median: number; max: number; mean: number };
  duplicatesDropped: number;
}

function summary(counts: number[]): { min: number; median: number; max: number; mean: number } {
  if (counts.length === 0) return { min: 0, median: 0, max: 0, mean: 0 };
  const s = [...counts].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { min: s[0], median, max: s[s.length - 1], mean: s.reduce((a, b) => a + b, 0) / s.length };
}

export function datasetStats(ds: Dataset): DatasetStats {
  const perUser = ds.sequences.map((s) => s.length);
  const itemCounts = new Array<number>(ds.items.length).fill(0);
  for (const s of ds.sequences) for (const i of s) itemCounts[i]++;
  const interactions = perUser.reduce((a, b) => a + b, 0);
  return {
    name: ds.name,
    format: ds.format,
    users: ds.users.length,
    items: ds.items.length,
    interactions,
    density: ds.users.length && ds.items.length ? interactions / (ds.users.length * ds.items.length) : 0,
    perUser: summary(perUser),
    perItem: summary(itemCounts),
    duplicatesDropped: ds.duplicatesDropped,
  };
}
