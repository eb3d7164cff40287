// The CF stage in a model directory: the vector database (one safetensors file) and its record
// in manifest.json (config, dataset fingerprint, metrics, sha256 of every file).
//
// Never half-written: the tensor file gets a new name derived from its content
// (cf.<sha12>.safetensors), written atomically; then the manifest is rewritten atomically to point
// at it; only then is the previous stage's file removed. A run killed at any point leaves either
// the old model or the new one, each complete and verifiable.
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Split } from '../data/types.js';
import { trainingInteractions } from '../data/split.js';
import { openManifest, recordStage, requireManifest, splitFingerprint, verifyStage, type DatasetRecord, type Manifest } from '../io/manifest.js';
import { encodeSafetensors, expectTensor, f32, i32, readSafetensors, requireFinite, writeSafetensors, type TensorMap } from '../io/safetensors.js';
import type { CfConfig } from './config.js';
import type { CfVectors } from './train.js';

export const CF_STAGE = 'cf';

/** Dataset record for the manifest: name, split fingerprint, sizes, and how to reload the data. */
export function datasetRecord(name: string, split: Split, source?: string, splitOptions?: Record<string, unknown>): DatasetRecord {
  return {
    name,
    fingerprint: splitFingerprint(split),
    users: split.numUsers,
    items: split.numItems,
    interactions: trainingInteractions(split),
    source,
    split: splitOptions,
  };
}

/** Opens the model directory for this data: refuses a directory trained on another dataset or split. */
export function openModelDir(dir: string, dataset: DatasetRecord): Manifest {
  return openManifest(dir, dataset);
}

export interface CfStageRecordInput {
  config: CfConfig;
  vectors: CfVectors;
  /** Training-graph CSR the model was trained on (kept: fold-in of new users needs it). */
  trainPtr: Int32Array;
  trainIdx: Int32Array;
  metrics: Record<string, unknown>;
  /** Other files of the stage, already written into `dir` (e.g. ids.json), recorded with it. */
  extraFiles?: string[];
}

/** Writes the CF stage into `dir` and records it in the manifest (atomically, see above). */
export function saveCfStage(dir: string, manifest: Manifest, s: CfStageRecordInput): Manifest {
  const { vectors: v, config } = s;
  const D = v.dim;
  const tensors: TensorMap = {
    user_vectors: f32([v.numUsers, D], v.userVectors),
    item_vectors: f32([v.numItems, D], v.itemVectors),
    user_ego: f32([v.numUsers, D], v.userEgo),
    item_ego: f32([v.numItems, D], v.itemEgo),
    user_source: i32([v.numUsers], v.userSource),
    train_ptr: i32([s.trainPtr.length], s.trainPtr),
    train_idx: i32([s.trainIdx.length], s.trainIdx),
  };
  const metadata = { model: config.model, dim: String(D), layers: String(config.layers), fingerprint: manifest.dataset.fingerprint };
  const h = createHash('sha256');
  for (const part of encodeSafetensors(tensors, metadata)) h.update(part);
  const file = `cf.${h.digest('hex').slice(0, 12)}.safetensors`;
  const previous = manifest.stages[CF_STAGE] ? Object.keys(manifest.stages[CF_STAGE].files) : [];
  writeSafetensors(join(dir, file), tensors, metadata);
  const m = recordStage(dir, manifest, CF_STAGE, config as unknown as Record<string, unknown>, [file, ...(s.extraFiles ?? [])], s.metrics);
  for (const f of previous) if (f !== file && !(s.extraFiles ?? []).includes(f)) rmSync(join(dir, f), { force: true });
  return m;
}

export interface LoadedCfStage extends CfVectors {
  config: CfConfig;
  layers: number;
  trainPtr: Int32Array;
  trainIdx: Int32Array;
  manifest: Manifest;
  metrics: Record<string, unknown>;
}

/** Reads the CF stage of a model directory, verifying every file's sha256 and every value. */
export function loadCfStage(dir: string): LoadedCfStage {
  const manifest = requireManifest(dir);
  verifyStage(dir, manifest, CF_STAGE);
  const rec = manifest.stages[CF_STAGE];
  const file = Object.keys(rec.files).find((f) => f.endsWith('.safetensors'));
  if (!file) throw new Error(`${dir}: stage 'cf' records no safetensors file`);
  const path = join(dir, file);
  if (!existsSync(path)) throw new Error(`${path} is missing`);
  const { tensors } = readSafetensors(path);
  const config = rec.config as unknown as CfConfig;
  const U = manifest.dataset.users, I = manifest.dataset.items, D = config.dim;
  const get = (name: string, shape: number[]) => {
    const t = expectTensor(tensors, name, shape, path);
    if (t.dtype === 'F32') requireFinite(t, name, path);
    return t.data;
  };
  return {
    numUsers: U,
    numItems: I,
    dim: D,
    layers: config.layers,
    userVectors: get('user_vectors', [U, D]) as Float32Array,
    itemVectors: get('item_vectors', [I, D]) as Float32Array,
    userEgo: get('user_ego', [U, D]) as Float32Array,
    itemEgo: get('item_ego', [I, D]) as Float32Array,
    userSource: get('user_source', [U]) as Int32Array,
    trainPtr: get('train_ptr', [U + 1]) as Int32Array,
    trainIdx: get('train_idx', [-1]) as Int32Array,
    config,
    manifest,
    metrics: rec.metrics ?? {},
  };
}
