// The CF stage end to end on small synthetic data: LightGCN and MF learn the planted structure
// (beating most-popular), training is deterministic, an interrupted run resumes to the same
// result, unseen users get useful fold-in vectors, the model directory round-trips and bad input
// gives clear errors.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { toOpenP5Text } from '../lib/data/synthetic.js';
import type { Split } from '../lib/data/types.js';
import { evaluatePopularity } from '../lib/baselines/pop.js';
import { resolveCfConfig, trainingCsr } from '../lib/cf/config.js';
import { foldInUsers, withUsersIncluded } from '../lib/cf/foldin.js';
import { createCfTrainer } from '../lib/cf/native.js';
import { datasetRecord, loadCfStage, openModelDir, saveCfStage } from '../lib/cf/store.js';
import { evaluateCf, trainCf, type CfProgressEvent } from '../lib/cf/train.js';
import { readSafetensors, writeSafetensors } from '../lib/io/safetensors.js';
import { registerTrain } from '../lib/cli/train.js';
import { registerEval } from '../lib/cli/eval.js';

const ds = syntheticDataset({ users: 300, items: 150, groups: 6, minPerUser: 8, maxPerUser: 20, seed: 5 });
const split = splitLeaveOneOut(ds);
const fast = { dim: 16, epochs: 30, batchSize: 256, lr: 5e-3, evalEvery: 5, patience: 3, backend: 'cpu' as const };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'tokenrec-cf-'));
}

describe('CF stage (LightGCN / MF, native BPR training)', () => {
  it('LightGCN and MF beat most-popular on planted groups; training is deterministic', async () => {
    const events: CfProgressEvent[] = [];
    const lg = await trainCf(split, { ...fast, model: 'lightgcn', layers: 2, onProgress: (e) => events.push(e) });
    const mf = await trainCf(split, { ...fast, model: 'mf' });
    const pop = await evaluatePopularity(split, 'test');
    const lgTest = (await evaluateCf(lg, split, 'test')).seen;
    const mfTest = (await evaluateCf(mf, split, 'test')).seen;
    expect(lgTest.users).toBe(300);
    expect(lgTest.hr[20]).toBeGreaterThan(pop.metrics.hr[20] + 0.05);
    expect(mfTest.hr[20]).toBeGreaterThan(pop.metrics.hr[20]);
    // The loss goes down; the kept epoch is the best validated one.
    expect(lg.history.at(-1)!.loss).toBeLessThan(lg.history[0].loss);
    const evals = lg.history.filter((h) => h.validNdcg20 !== undefined);
    expect(Math.max(...evals.map((h) => h.validNdcg20!))).toBe(evals.find((h) => h.epoch === lg.bestEpoch)!.validNdcg20);
    expect(lg.valid!.ndcg[20]).toBeCloseTo(evals.find((h) => h.epoch === lg.bestEpoch)!.validNdcg20!, 6);
    expect(events.some((e) => e.phase === 'train')).toBe(true);
    expect(events.filter((e) => e.phase === 'eval').length).toBe(evals.length);
    // Same seed, same vectors, bit for bit.
    const again = await trainCf(split, { ...fast, model: 'lightgcn', layers: 2, epochs: 5 });
    const again2 = await trainCf(split, { ...fast, model: 'lightgcn', layers: 2, epochs: 5 });
    expect(Buffer.from(again.userVectors.buffer).equals(Buffer.from(again2.userVectors.buffer))).toBe(true);
    const other = await trainCf(split, { ...fast, model: 'lightgcn', layers: 2, epochs: 5, seed: 1 });
    expect(Buffer.from(again.userVectors.buffer).equals(Buffer.from(other.userVectors.buffer))).toBe(false);
  });

  it('an interrupted run resumes from its checkpoint to the same result', async () => {
    const dir = tmp();
    try {
      const checkpoint = join(dir, 'ckpt.safetensors');
      const opts = { ...fast, model: 'lightgcn' as const, layers: 2, epochs: 12, evalEvery: 4, patience: 10 };
      const full = await trainCf(split, opts);
      const ac = new AbortController();
      await expect(
        trainCf(split, { ...opts, checkpoint, signal: ac.signal, onProgress: (e) => e.phase === 'eval' && e.epoch === 8 && ac.abort() }),
      ).rejects.toThrow(/abort/i);
      expect(existsSync(checkpoint)).toBe(true);
      const resumed = await trainCf(split, { ...opts, checkpoint });
      expect(resumed.resumedFromEpoch).toBe(8);
      expect(resumed.history.length).toBe(12);
      expect(Buffer.from(resumed.userVectors.buffer).equals(Buffer.from(full.userVectors.buffer))).toBe(true);
      expect(Buffer.from(resumed.itemEgo.buffer).equals(Buffer.from(full.itemEgo.buffer))).toBe(true);

      // A checkpoint with NaN is refused with a clear error.
      const { tensors, metadata } = readSafetensors(checkpoint);
      (tensors.adam_m.data as Float32Array)[7] = NaN;
      writeSafetensors(checkpoint, tensors, metadata);
      await expect(trainCf(split, { ...opts, checkpoint })).rejects.toThrow(/adam_m.*non-finite/);
      // A checkpoint of another configuration or dataset is refused too.
      (tensors.adam_m.data as Float32Array)[7] = 0;
      writeSafetensors(checkpoint, tensors, metadata);
      await expect(trainCf(split, { ...opts, dim: 8, checkpoint })).rejects.toThrow(/another configuration/);
      const split2 = splitLeaveOneOut(syntheticDataset({ users: 300, items: 150, groups: 6, seed: 6 }));
      await expect(trainCf(split2, { ...opts, checkpoint })).rejects.toThrow(/another dataset/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives unseen users fold-in vectors that rank far better than most-popular', async () => {
    const s = splitLeaveOneOut(syntheticDataset({ users: 400, items: 150, groups: 6, minPerUser: 10, maxPerUser: 20, seed: 9 }), { unseenFraction: 0.2 });
    expect(s.unseenUsers.length).toBeGreaterThan(50);
    const r = await trainCf(s, { ...fast, model: 'lightgcn', layers: 2 });
    expect(Array.from(s.unseenUsers).every((u) => r.userSource[u] === 1)).toBe(true);
    const m = await evaluateCf(r, s, 'test');
    const unseenUsers = Int32Array.from(Array.from(s.unseenUsers).filter((u) => s.test[u] >= 0));
    const pop = await evaluatePopularity(s, 'test', { users: unseenUsers });
    expect(m.unseen!.users).toBe(unseenUsers.length);
    expect(m.unseen!.hr[20]).toBeGreaterThan(pop.metrics.hr[20] + 0.05);
    // Fold-in leaves every trained vector alone and works on a loaded model the same way.
    const csr = trainingCsr(s);
    const again = await foldInUsers({ ...r, layers: 2, trainPtr: csr.ptr, trainIdx: csr.idx }, [s.train[s.unseenUsers[0]]]);
    expect(Array.from(again.final)).toEqual(Array.from(r.userVectors.subarray(s.unseenUsers[0] * 16, s.unseenUsers[0] * 16 + 16)));
    await expect(foldInUsers({ ...r, layers: 2, trainPtr: csr.ptr, trainIdx: csr.idx }, [[150]])).rejects.toThrow(/item 150/);
    // Full-retrain path: the same users as ordinary training users.
    const full = withUsersIncluded(s);
    expect(full.unseenUsers.length).toBe(0);
    expect(trainingCsr(full).idx.length).toBeGreaterThan(csr.idx.length);
  });

  it('rejects bad input with clear errors', async () => {
    expect(() => resolveCfConfig({ dim: 0 })).toThrow(/dim must be an integer >= 1, got 0/);
    expect(() => resolveCfConfig({ model: 'mf', layers: 3 })).toThrow(/MF has no propagation layers/);
    expect(() => resolveCfConfig({ lr: NaN })).toThrow(/lr must be a non-negative number/);
    const empty: Split = { ...split, train: split.train.map(() => new Int32Array(0)) };
    await expect(trainCf(empty, fast)).rejects.toThrow(/training split is empty/);
    // The native trainer: one call at a time, nothing after dispose.
    const csr = trainingCsr(split);
    const t = await createCfTrainer({ numUsers: split.numUsers, numItems: split.numItems, trainPtr: csr.ptr, trainIdx: csr.idx, dim: 4, layers: 1, batchSize: 64, lambda: 1e-4, lr: 1e-3, initStd: 0.1, seed: 0, backend: 'cpu' });
    const p = t.beginEpoch(0);
    expect(() => t.trainBatches(1)).toThrow(/still running/);
    await p;
    expect(t.setState.bind(t, { ...t.getState(), ego: new Float32Array(3) })).toThrow(/same length/);
    t.dispose();
    expect(() => t.beginEpoch(1)).toThrow(/disposed/);
    await expect(
      createCfTrainer({ numUsers: 2, numItems: 3, trainPtr: new Int32Array([0, 1, 2]), trainIdx: new Int32Array([0, 7]), dim: 4, layers: 1, batchSize: 8, lambda: 0, lr: 1e-3, initStd: 0.1, seed: 0, backend: 'cpu' }),
    ).rejects.toThrow(/trainIdx\[1\] = 7/);
    await expect(
      createCfTrainer({ numUsers: 2, numItems: 3, trainPtr: new Int32Array([0, 1, 2]), trainIdx: new Int32Array([0, 1]), dim: 0, layers: 1, batchSize: 8, lambda: 0, lr: 1e-3, initStd: 0.1, seed: 0, backend: 'cpu' }),
    ).rejects.toThrow(/dim must be an integer >= 1/);
  });

  it('model directory: round trip, sha256 checks, never half-written, other datasets refused', async () => {
    const dir = tmp();
    try {
      const config = resolveCfConfig({ ...fast, model: 'mf', epochs: 5 });
      const r = await trainCf(split, config);
      const csr = trainingCsr(split);
      const rec = datasetRecord(ds.name, split, 'synthetic');
      let m = openModelDir(dir, rec);
      m = saveCfStage(dir, m, { config, vectors: r, trainPtr: csr.ptr, trainIdx: csr.idx, metrics: { x: 1 } });
      const first = readdirSync(dir).filter((f) => f.startsWith('cf.'));
      expect(first).toHaveLength(1);
      const loaded = loadCfStage(dir);
      expect(Array.from(loaded.userVectors)).toEqual(Array.from(r.userVectors));
      expect(Array.from(loaded.itemEgo)).toEqual(Array.from(r.itemEgo));
      expect(loaded.config).toEqual(config);
      // A second save writes a new file, repoints the manifest, then removes the old file.
      const r2 = await trainCf(split, { ...config, seed: 3 });
      saveCfStage(dir, loadCfStage(dir).manifest, { config: { ...config, seed: 3 }, vectors: r2, trainPtr: csr.ptr, trainIdx: csr.idx, metrics: {} });
      const second = readdirSync(dir).filter((f) => f.startsWith('cf.'));
      expect(second).toHaveLength(1);
      expect(second[0]).not.toBe(first[0]);
      expect(Array.from(loadCfStage(dir).userVectors)).toEqual(Array.from(r2.userVectors));
      // Another dataset is refused before anything is written.
      const other = splitLeaveOneOut(syntheticDataset({ users: 50, items: 40, seed: 2 }));
      expect(() => openModelDir(dir, datasetRecord('other', other))).toThrow(/another dataset or split/);
      // A corrupted vector file is detected.
      const p = join(dir, second[0]);
      const bytes = readFileSync(p);
      bytes[bytes.length - 1] ^= 1;
      writeFileSync(p, bytes);
      expect(() => loadCfStage(dir)).toThrow(/corrupted or was changed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('CLI: train --stage cf then eval, JSON output, up-to-date detection', async () => {
    const dir = tmp();
    const data = join(dir, 'data.txt');
    writeFileSync(data, toOpenP5Text(ds));
    const out = join(dir, 'model');
    const run = async (args: string[]) => {
      const program = new Command('tokenrec').exitOverride();
      registerTrain(program);
      registerEval(program);
      const lines: string[] = [];
      const orig = console.log;
      console.log = (s: string) => lines.push(s);
      try {
        await program.parseAsync(['node', 'tokenrec', ...args]);
      } finally {
        console.log = orig;
      }
      return lines;
    };
    try {
      const trained = JSON.parse((await run(['train', data, '--out', out, '--stage', 'cf', '--model', 'lightgcn', '--dim', '16', '--layers', '2', '--epochs', '10', '--batch-size', '256', '--lr', '5e-3', '--no-progress', '--json']))[0]);
      expect(trained.metrics.test.users).toBe(300);
      expect(trained.metrics.test.hr[20]).toBeGreaterThan(trained.metrics.mostPopularTest.hr[20]);
      expect(existsSync(join(out, 'checkpoints'))).toBe(false);
      const ev = JSON.parse((await run(['eval', out, '--stage', 'cf', '--split', 'test', '--json']))[0]);
      expect(ev.metrics).toEqual(trained.metrics.test);
      const again = JSON.parse((await run(['train', data, '--out', out, '--stage', 'cf', '--dim', '16', '--layers', '2', '--epochs', '10', '--batch-size', '256', '--lr', '5e-3', '--no-progress', '--json']))[0]);
      expect(again.upToDate).toBe(true);
      await expect(run(['train', data, '--out', out, '--stage', 'cf', '--dim', '0', '--no-progress'])).rejects.toThrow(/dim must be an integer >= 1/);
      // Another dataset into the same directory: refused, and the model is untouched.
      const before = readFileSync(join(out, 'manifest.json'), 'utf8');
      const data2 = join(dir, 'data2.txt');
      writeFileSync(data2, toOpenP5Text(syntheticDataset({ users: 100, items: 60, seed: 4 })));
      await expect(run(['train', data2, '--out', out, '--stage', 'cf', '--epochs', '2', '--no-progress'])).rejects.toThrow(/another dataset or split/);
      expect(readFileSync(join(out, 'manifest.json'), 'utf8')).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
