// The model directory: manifest.json plus the files each stage writes.
//
// manifest.json = { format, version, dataset: {...fingerprint}, stages: { <stage>: StageRecord } }
// A stage writes its files atomically first, then records them (with sha256) in the manifest,
// itself written atomically: a run killed half-way leaves the previous model intact.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import type { Split } from '../data/types.js';

export const MANIFEST_FORMAT = 'tokenrec-model';
export const MANIFEST_VERSION = 1;

export interface DatasetRecord {
  name: string;
  /** sha256 over the split (train lists, targets, held-out flags): same data + same split = same fingerprint. */
  fingerprint: string;
  users: number;
  items: number;
  interactions: number;
  /** Where the data came from and how it was split, for reproduction. */
  source?: string;
  split?: Record<string, unknown>;
}

export interface StageRecord {
  /** The stage's configuration; a stage whose config differs is retrained. */
  config: Record<string, unknown>;
  /** File name (relative to the model directory) -> sha256 hex. */
  files: Record<string, string>;
  metrics?: Record<string, unknown>;
  completedAt: string;
}

export interface Manifest {
  format: string;
  version: number;
  dataset: DatasetRecord;
  stages: Record<string, StageRecord>;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Fingerprint of a split: identical data and split parameters give identical fingerprints. */
export function splitFingerprint(split: Split): string {
  const h = createHash('sha256');
  h.update(`${split.numUsers} ${split.numItems}\n`);
  for (let u = 0; u < split.numUsers; u++) {
    const t = split.train[u];
    h.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
    h.update(`|${split.valid[u]},${split.test[u]},${split.heldOut[u]}\n`);
  }
  return h.digest('hex');
}

export function manifestPath(dir: string): string {
  return join(dir, 'manifest.json');
}

/** Reads and checks manifest.json; returns undefined when the directory has none. */
export function readManifest(dir: string): Manifest | undefined {
  const p = manifestPath(dir);
  if (!existsSync(p)) return undefined;
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(p, 'utf8')) as Manifest;
  } catch (e) {
    throw new Error(`${p}: not valid JSON (${(e as Error).message})`);
  }
  if (m.format !== MANIFEST_FORMAT) throw new Error(`${p}: not a tokenrec model directory (format '${m.format}')`);
  if (m.version !== MANIFEST_VERSION) throw new Error(`${p}: manifest version ${m.version} is not supported (this tokenrec reads ${MANIFEST_VERSION})`);
  if (!m.stages || typeof m.stages !== 'object') throw new Error(`${p}: no stages`);
  return m;
}

/** Reads the manifest or throws a clear error when the directory is not a model directory. */
export function requireManifest(dir: string): Manifest {
  const m = readManifest(dir);
  if (!m) throw new Error(`${dir} is not a tokenrec model directory (no manifest.json); train one with \`tokenrec train\``);
  return m;
}

/**
 * Opens (or starts) the manifest of a model directory for a dataset. A directory trained on
 * other data is refused: mixing stages of two datasets would silently produce garbage.
 */
export function openManifest(dir: string, dataset: DatasetRecord): Manifest {
  const m = readManifest(dir);
  if (!m) return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, dataset, stages: {} };
  if (m.dataset.fingerprint !== dataset.fingerprint) {
    throw new Error(
      `${dir} holds a model of another dataset or split ('${m.dataset.name}', fingerprint ${m.dataset.fingerprint.slice(0, 12)}…, ` +
        `this data: '${dataset.name}', ${dataset.fingerprint.slice(0, 12)}…); use another --out directory`,
    );
  }
  return m;
}

export function writeManifest(dir: string, m: Manifest): void {
  writeFileAtomic(manifestPath(dir), JSON.stringify(m, null, 2) + '\n');
}

/**
 * Pipeline order: each stage is built on the ones before it, so recording a stage drops the
 * records of the stages after it (built on the previous version; they are retrained by the next
 * `train`, and a Recommender refuses a directory without them).
 */
export const STAGE_ORDER = ['cf', 'tokenizer', 'llm', 'ar'] as const;

/** Records a finished stage: hashes its files (already written) and rewrites the manifest. */
export function recordStage(
  dir: string,
  m: Manifest,
  stage: string,
  config: Record<string, unknown>,
  files: string[],
  metrics?: Record<string, unknown>,
): Manifest {
  const hashes: Record<string, string> = {};
  for (const f of files) hashes[f] = sha256File(join(dir, f));
  const at = (STAGE_ORDER as readonly string[]).indexOf(stage);
  if (at >= 0) for (const later of STAGE_ORDER.slice(at + 1)) delete m.stages[later];
  m.stages[stage] = { config, files: hashes, metrics, completedAt: new Date().toISOString() };
  writeManifest(dir, m);
  return m;
}

/** Checks that every file of a stage exists and has the recorded sha256. */
export function verifyStage(dir: string, m: Manifest, stage: string): void {
  const rec = m.stages[stage];
  if (!rec) throw new Error(`${dir}: stage '${stage}' has not been trained (manifest.json has no '${stage}' entry)`);
  for (const [f, sum] of Object.entries(rec.files)) {
    const p = join(dir, f);
    if (!existsSync(p)) throw new Error(`${dir}: file ${f} of stage '${stage}' is missing`);
    const got = sha256File(p);
    if (got !== sum) throw new Error(`${dir}: file ${f} of stage '${stage}' is corrupted or was changed (sha256 ${got.slice(0, 12)}…, manifest says ${sum.slice(0, 12)}…)`);
  }
}

/** True when a stage is recorded with exactly this config and its files verify. */
export function stageIsCurrent(dir: string, m: Manifest, stage: string, config: Record<string, unknown>): boolean {
  const rec = m.stages[stage];
  if (!rec || JSON.stringify(rec.config) !== JSON.stringify(config)) return false;
  try {
    verifyStage(dir, m, stage);
    return true;
  } catch {
    return false;
  }
}
