// The AR stage of a model directory (lib/ar/stage.ts) and the latency benchmark (bench/latency.ts)
// on tiny synthetic setups.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { datasetRecord, openModelDir, saveCfStage } from '../lib/cf/store.js';
import { i32, writeSafetensors } from '../lib/io/safetensors.js';
import { recordStage, requireManifest } from '../lib/io/manifest.js';
import { TOKENIZER_FILES, TOKENIZER_STAGE } from '../lib/tokenizer/stage.js';
import { AR_FILES, AR_STAGE, loadARStage, readTokenizerCodes, trainARStage } from '../lib/ar/stage.js';
import { evaluateAR } from '../lib/ar/train.js';
import { OnnxARBeam } from '../lib/ar/onnx-beam.js';
import { padPrompts } from '../lib/llm/model.js';
import { formatLatency, LATENCY_FILES, modelDirSetup, runLatencyBench, syntheticSetup } from '../bench/latency.js';
import { Vocabulary } from '../lib/llm/vocab.js';
import { t5Config } from '../lib/t5/config.js';
import { T5Model } from '../lib/t5/model.js';
import { Mlp } from '../lib/nn/mlp.js';
import { exportT5Onnx, mlpHead } from '../lib/t5/onnx-export.js';
import { resolveCfConfig, trainingCsr } from '../lib/cf/config.js';
import { rng } from './helpers/random.js';
import { tempDir } from './helpers/tmp.js';

describe('AR stage', () => {
  const tmp = tempDir('tokenrec-ar-');
  const ds = syntheticDataset({ users: 80, items: 50, groups: 4, minPerUser: 6, maxPerUser: 12, seed: 3 });
  const split = splitLeaveOneOut(ds);
  const K = 3, L = 8;

  it('trains from the tokenizer codes, writes weights + graphs, records metrics; the stored graphs and weights reproduce the model', async () => {
    const dir = tmp.dir;
    const manifest = openModelDir(dir, datasetRecord('synthetic', split));
    const r = rng(9);
    const codes = (n: number) => Int32Array.from({ length: n * K }, () => Math.floor(r() * L));
    writeSafetensors(join(dir, TOKENIZER_FILES.codes), { user_codes: i32([split.numUsers, K], codes(split.numUsers)), item_codes: i32([split.numItems, K], codes(split.numItems)) });
    recordStage(dir, manifest, TOKENIZER_STAGE, { K, L }, [TOKENIZER_FILES.codes]);

    const res = await trainARStage(dir, split, { preset: 't5-tiny', epochs: 2, batch: 32, samplesPerUser: 1, historyCap: 8, maxValidUsers: 40, beam: 5, seed: 1 });
    expect(res.history.length).toBe(2);
    expect(res.history.every((h) => Number.isFinite(h.loss))).toBe(true);
    for (const f of res.files) expect(existsSync(join(dir, f))).toBe(true);
    expect(res.files).toContain(AR_FILES.encoder);
    const rec = requireManifest(dir).stages[AR_STAGE];
    expect(Object.keys(rec.files).sort()).toEqual([...res.files].sort());
    expect(res.test?.hr[20]).toBeGreaterThanOrEqual(0);

    // Reloaded native model and the stored ONNX graphs agree, and evaluation is reproducible.
    const model = loadARStage(dir);
    try {
      const { userCodes } = readTokenizerCodes(dir);
      const data = { split, userCodes, itemCodes: model.itemCodes };
      const users = Int32Array.from([0, 1, 2, 3, 4, 5]);
      const viaOnnx = await evaluateAR(model, data, 'valid', { beam: 5, cap: 8, users });
      const viaNative = await evaluateAR(model, data, 'valid', { beam: 5, cap: 8, users, engine: 'native' });
      expect(Array.from(viaOnnx.ranks)).toEqual(Array.from(viaNative.ranks));
      const beam = await OnnxARBeam.create(readFileSync(join(dir, AR_FILES.encoder)), readFileSync(join(dir, AR_FILES.step)), model.t5.config, model.trie, { start: model.vocab.pad, itemBase: model.vocab.itemBase });
      try {
        const p = padPrompts([[5, 6, 7, 1], [9, 10, 1]]);
        const a = await beam.search(p, { beam: 5, k: 5 });
        const b = await model.recommend(p, { beam: 5, k: 5 });
        expect(a.map((x) => x.items)).toEqual(b.map((x) => x.items));
      } finally {
        await beam.dispose();
      }
    } finally {
      model.dispose();
    }
  }, 60_000);

  it('bench latency runs on the model directory (LLM4Rec graph + vocab.json + AR graphs + codes + CF vectors)', async () => {
    const dir = tmp.dir; // holds the tokenizer and AR stages of the test above
    const vocab = new Vocabulary({ userK: K, userL: L, itemK: K, itemL: L, decoderQueries: 20 });
    writeFileSync(join(dir, LATENCY_FILES.vocab), JSON.stringify(vocab.toJSON()));
    const config = t5Config('t5-tiny', vocab.size);
    const t5 = T5Model.create(config, 4);
    const proj = new Mlp([20 * config.dModel, 16, 8], 5);
    writeFileSync(join(dir, LATENCY_FILES.backbone), exportT5Onnx(config, t5.getTensors(), { head: mlpHead(proj.sizes, proj.weights, proj.biases) }));
    t5.dispose();
    const r = rng(2);
    const vec = (n: number) => Float32Array.from({ length: n * 8 }, () => r() - 0.5);
    const csr = trainingCsr(split);
    saveCfStage(dir, requireManifest(dir), {
      config: resolveCfConfig({ model: 'mf', dim: 8 }),
      vectors: { numUsers: split.numUsers, numItems: split.numItems, dim: 8, userVectors: vec(split.numUsers), itemVectors: vec(split.numItems), userEgo: vec(split.numUsers), itemEgo: vec(split.numItems), userSource: new Int32Array(split.numUsers) },
      trainPtr: csr.ptr,
      trainIdx: csr.idx,
      metrics: {},
    });
    const setup = modelDirSetup(dir);
    expect(setup.synthetic).toBe(false);
    const res = await runLatencyBench(setup, { batches: [2], threads: 1, beam: 5, k: 5, history: 4, repeats: 1, cellSeconds: 5 });
    expect(res.rows[0].beam.stepMs.length).toBe(K);
    expect(res.items).toBe(split.numItems);
    expect(() => modelDirSetup(join(dir, 'nowhere'))).toThrow(/missing backbone.onnx/);
  }, 30_000);

  it('refuses a split that is not the directory\'s', async () => {
    const other = splitLeaveOneOut(syntheticDataset({ users: 30, items: 20, seed: 8 }));
    await expect(trainARStage(tmp.dir, other, { preset: 't5-tiny' })).rejects.toThrow(/not the one/);
  });
});

describe('latency benchmark', () => {
  it('runs both paths on a synthetic t5-tiny setup and reports the breakdown', async () => {
    const setup = syntheticSetup({ preset: 't5-tiny', items: 300, users: 50, L: 16, queries: 4, projHidden: [32], itemDim: 16 });
    const r = await runLatencyBench(setup, { batches: [1, 3], threads: 1, beam: 4, k: 5, history: 6, repeats: 2, cellSeconds: 10 });
    expect(r.rows.map((x) => x.batch)).toEqual([1, 3]);
    for (const row of r.rows) {
      expect(row.tokenrec.ms).toBeGreaterThan(0);
      expect(row.beam.stepMs.length).toBe(3);
      expect(row.beam.encoderMs).toBeGreaterThan(0);
    }
    const table = formatLatency(r);
    expect(table).toMatch(/beam \/ TokenRec/);
    expect(table).toMatch(/latency does not depend on the weight values/);
    await expect(runLatencyBench(setup, { batches: [0], threads: 1, beam: 4, k: 5, history: 6, repeats: 1, cellSeconds: 1 })).rejects.toThrow(/batch sizes/);
  }, 30_000);
});
