// A killed LLM4Rec training run resumes exactly: the per-epoch checkpoint (weights, AdamW state
// of the backbone and of the projection, progress) brings a resumed run to the same bits as an
// uninterrupted one; an unusable optimiser checkpoint means a clean restart with a message.
import { describe, expect, it } from 'vitest';
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { datasetRecord, openModelDir, saveCfStage } from '../lib/cf/store.js';
import { f32, i32, readSafetensors, writeSafetensors } from '../lib/io/safetensors.js';
import { recordStage, requireManifest } from '../lib/io/manifest.js';
import { TOKENIZER_FILES, TOKENIZER_STAGE } from '../lib/tokenizer/stage.js';
import { resolveCfConfig, trainingCsr } from '../lib/cf/config.js';
import { DEFAULT_LLM_STAGE, LLM_STAGE, llmInputs, optimizerTensors, restoreOptimizer, runLLMStage, type LLMStageConfig } from '../lib/llm/stage.js';
import { DEFAULT_LLM_TRAIN, trainLLM } from '../lib/llm/train.js';
import { LLM4Rec, padPrompts } from '../lib/llm/model.js';
import { cosineMarginLoss } from '../lib/llm/loss.js';
import { t5Config } from '../lib/t5/config.js';
import { Mlp } from '../lib/nn/mlp.js';
import { rng } from './helpers/random.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir('tokenrec-resume-');
const split = splitLeaveOneOut(syntheticDataset({ users: 60, items: 40, groups: 4, minPerUser: 6, maxPerUser: 12, seed: 5 }));
const K = 3, L = 8, D = 8;
const cfg: LLMStageConfig = {
  ...DEFAULT_LLM_STAGE,
  preset: 't5-tiny',
  queries: 2,
  projHidden: [16],
  dropout: 0.1, // dropout on: its random stream must resume too
  train: { ...DEFAULT_LLM_TRAIN, epochs: 2, samplesPerUser: 2, batch: 16, historyCap: 8, maxValidUsers: 40, seed: 3 },
};

/** A model directory with random CF vectors and tokenizer codes (the LLM stage's frozen inputs). */
function baseDir(): string {
  const dir = join(tmp.dir, 'base');
  const manifest = openModelDir(dir, datasetRecord('synthetic', split));
  const r = rng(9);
  const vec = (n: number) => Float32Array.from({ length: n * D }, () => r() - 0.5);
  const csr = trainingCsr(split);
  saveCfStage(dir, manifest, {
    config: resolveCfConfig({ model: 'mf', dim: D }),
    vectors: { numUsers: split.numUsers, numItems: split.numItems, dim: D, userVectors: vec(split.numUsers), itemVectors: vec(split.numItems), userEgo: vec(split.numUsers), itemEgo: vec(split.numItems), userSource: new Int32Array(split.numUsers) },
    trainPtr: csr.ptr,
    trainIdx: csr.idx,
    metrics: {},
  });
  const codes = (n: number) => Int32Array.from({ length: n * K }, () => Math.floor(r() * L));
  writeSafetensors(join(dir, TOKENIZER_FILES.codes), { user_codes: i32([split.numUsers, K], codes(split.numUsers)), item_codes: i32([split.numItems, K], codes(split.numItems)) });
  recordStage(dir, requireManifest(dir), TOKENIZER_STAGE, { K, L }, [TOKENIZER_FILES.codes]);
  return dir;
}

function copyOf(base: string, name: string): string {
  const dir = join(tmp.dir, name);
  cpSync(base, dir, { recursive: true });
  return dir;
}

/** The saved weights file (its name is a hash of the tensors), its bytes, and the metrics without timings. */
function outcome(dir: string) {
  const rec = requireManifest(dir).stages[LLM_STAGE];
  const file = Object.keys(rec.files).find((f) => f.startsWith('llm.'))!;
  const { trainSeconds: _t, samplesPerSecond: _s, history, ...metrics } = rec.metrics as Record<string, unknown> & { history: { seconds: number; samplesPerSecond: number }[] };
  return { file, bytes: readFileSync(join(dir, file)), metrics, history: history.map(({ seconds: _a, samplesPerSecond: _b, ...h }) => h) };
}

/** Runs the stage and aborts it (as a kill would stop it) once epoch `after` is checkpointed. */
async function runAndAbort(dir: string, after: number, c: LLMStageConfig = cfg): Promise<void> {
  const ac = new AbortController();
  await expect(runLLMStage(dir, split, c, { signal: ac.signal, onEpoch: (r) => r.epoch === after && ac.abort() })).rejects.toThrow(/aborted/);
}

describe('LLM stage: resuming a killed run', () => {
  const base = baseDir();
  let reference: ReturnType<typeof outcome>;

  it('a run stopped after epoch 1 and resumed ends bit-identical to an uninterrupted run', async () => {
    const a = copyOf(base, 'uninterrupted');
    const msgA: string[] = [];
    await runLLMStage(a, split, cfg, { onMessage: (s) => msgA.push(s) });
    expect(msgA).toEqual([]);
    reference = outcome(a);
    expect(reference.history.length).toBe(2);
    expect(existsSync(join(a, 'checkpoints', 'llm-last.optim.safetensors'))).toBe(false); // cleaned up

    const b = copyOf(base, 'resumed');
    await runAndAbort(b, 1);
    const ck = join(b, 'checkpoints');
    const state = JSON.parse(readFileSync(join(ck, 'llm-state.json'), 'utf8')) as { epoch: number };
    expect(state.epoch).toBe(1);
    const optim = readSafetensors(join(ck, 'llm-last.optim.safetensors'));
    expect(optim.metadata.epoch).toBe('1');
    expect(Number(optim.metadata.t5_steps)).toBeGreaterThan(0);
    expect(optim.metadata.proj_steps).toBe(optim.metadata.t5_steps);

    const msgB: string[] = [];
    await runLLMStage(b, split, cfg, { onMessage: (s) => msgB.push(s) });
    expect(msgB).toEqual([expect.stringMatching(/^llm: resuming after epoch 1 \(best so far: epoch 1\)$/)]);
    const got = outcome(b);
    expect(got.file).toBe(reference.file);
    expect(Buffer.compare(got.bytes, reference.bytes)).toBe(0);
    expect(got.history).toEqual(reference.history); // losses and validation metrics of both epochs
    expect(got.metrics).toEqual(reference.metrics);
  }, 60_000);

  const corruptions: [string, (t: ReturnType<typeof readSafetensors>) => void, RegExp][] = [
    ['a NaN first moment', (f) => ((f.tensors['t5.m.shared.weight'].data as Float32Array)[7] = NaN), /t5\.m\.shared\.weight/],
    ['a wrongly shaped moment', (f) => {
      const t = f.tensors['proj.v.0.weight'];
      f.tensors['proj.v.0.weight'] = f32([t.shape[1], t.shape[0]], t.data as Float32Array);
    }, /proj\.v\.0\.weight/],
    ['a negative second moment', (f) => ((f.tensors['t5.v.decoder.final_layer_norm.weight'].data as Float32Array)[0] = -1), /second moment of 'decoder\.final_layer_norm\.weight'\[0\] is negative/],
    ['a missing step count', (f) => delete f.metadata.t5_steps, /t5_steps/],
  ];
  for (const [what, corrupt, reason] of corruptions) {
    it(`${what} in the optimiser checkpoint: a clean restart with a message, same result`, async () => {
      const dir = copyOf(base, `corrupt-${what.replace(/\W+/g, '-')}`);
      await runAndAbort(dir, 1);
      const p = join(dir, 'checkpoints', 'llm-last.optim.safetensors');
      const f = readSafetensors(p);
      corrupt(f);
      writeSafetensors(p, f.tensors, f.metadata);
      const msg: string[] = [];
      await runLLMStage(dir, split, cfg, { onMessage: (s) => msg.push(s) });
      expect(msg.length).toBe(1);
      expect(msg[0]).toMatch(/^llm: the checkpoint of epoch 1 cannot be resumed: /);
      expect(msg[0]).toMatch(reason);
      expect(msg[0]).toMatch(/training starts over from epoch 0$/);
      expect(outcome(dir).file).toBe(reference.file);
    }, 30_000);
  }

  it('a missing optimiser file or one of another epoch: a clean restart with a message', async () => {
    const dir = copyOf(base, 'missing');
    await runAndAbort(dir, 1);
    const p = join(dir, 'checkpoints', 'llm-last.optim.safetensors');
    const f = readSafetensors(p);
    writeSafetensors(p, f.tensors, { ...f.metadata, epoch: '2' }); // as if killed between the files
    const msg: string[] = [];
    const ac = new AbortController();
    await expect(runLLMStage(dir, split, cfg, { signal: ac.signal, onMessage: (s) => msg.push(s), onEpoch: () => ac.abort() })).rejects.toThrow(/aborted/);
    expect(msg[0]).toMatch(/llm-last\.optim\.safetensors is of epoch 2, the state file of epoch 1; training starts over/);
    rmSync(p);
    msg.length = 0;
    await runLLMStage(dir, split, cfg, { onMessage: (s) => msg.push(s) });
    expect(msg[0]).toMatch(/llm-last\.optim\.safetensors is missing; training starts over/);
    expect(outcome(dir).file).toBe(reference.file);
  }, 30_000);

  it('a softmax-cosine-bias run resumes bit-identical too (the item bias and its Adam state are checkpointed)', async () => {
    const bias: LLMStageConfig = { ...cfg, train: { ...cfg.train, loss: 'softmax-cosine-bias', temperature: 0.2 } };
    const a = copyOf(base, 'bias-uninterrupted');
    await runLLMStage(a, split, bias);
    const want = outcome(a);
    expect(readSafetensors(join(a, want.file)).tensors.item_bias.shape).toEqual([split.numItems]);
    const b = copyOf(base, 'bias-resumed');
    await runAndAbort(b, 1, bias);
    const optim = readSafetensors(join(b, 'checkpoints', 'llm-last.optim.safetensors'));
    expect(optim.metadata.bias_steps).toBe(optim.metadata.t5_steps);
    expect(optim.tensors['bias.v'].shape).toEqual([split.numItems]);
    await runLLMStage(b, split, bias);
    const got = outcome(b);
    expect(Buffer.compare(got.bytes, want.bytes)).toBe(0);
    expect(got.metrics).toEqual(want.metrics);
  }, 60_000);
});

describe('optimiser state of LLM4Rec', () => {
  it('carries the next step exactly; weights alone do not', async () => {
    const { vocab, data } = llmInputs(join(tmp.dir, 'base'), split, cfg);
    const shape = { t5: t5Config('t5-tiny', vocab.size, { dropoutRate: 0 }), queries: 2, projHidden: [16], itemDim: D };
    const r = rng(4);
    const prompts = padPrompts([[5, 6, 7, 1], [9, 10, 1], [11, 1]]);
    const vec = () => Float32Array.from({ length: 3 * D }, () => r() - 0.5);
    const pos = vec(), neg = vec();
    const opts = { lr: 1e-3, weightDecay: 0.01, clipNorm: 1 };
    const objective = (z: Float32Array) => cosineMarginLoss(z, pos, neg, D, 0.1);
    const a = LLM4Rec.create(shape, vocab, 1);
    for (let s = 0; s < 3; s++) await a.trainStep(prompts, objective, opts);
    const copy = (withOptimizer: boolean) => {
      const m = LLM4Rec.create(shape, vocab, 2);
      m.t5.setTensors(a.t5.getTensors());
      a.proj.weights.forEach((w, l) => m.proj.weights[l].set(w));
      a.proj.biases.forEach((b, l) => m.proj.biases[l].set(b));
      if (withOptimizer) {
        const o = optimizerTensors(a);
        restoreOptimizer(m, o.tensors, o.metadata, 'test');
      }
      return m;
    };
    const b = copy(true), c = copy(false);
    for (const m of [a, b, c]) await m.trainStep(prompts, objective, opts);
    const flat = (m: LLM4Rec) => [...Object.values(m.t5.getTensors()), ...m.proj.weights, ...m.proj.biases];
    const same = (x: Float32Array, y: Float32Array) => Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) === 0;
    const fa = flat(a), fb = flat(b), fc = flat(c);
    expect(fa.every((t, i) => same(t, fb[i]))).toBe(true);
    // Without the moments the step differs (what the test above would catch).
    expect(fa.every((t, i) => same(t, fc[i]))).toBe(false);
    expect(b.t5.getOptimizerState().steps).toBe(4);
    for (const m of [a, b, c]) m.dispose();
  });

  it('a checkpoint of the epoch that ran out of patience resumes as stopped (no further epoch)', async () => {
    const { vocab, data } = llmInputs(join(tmp.dir, 'base'), split, cfg);
    const m = LLM4Rec.create({ t5: t5Config('t5-tiny', vocab.size), queries: 2, projHidden: [16], itemDim: D }, vocab, 1);
    const epochs: number[] = [];
    const o = { ...cfg.train, epochs: 4, patience: 1 };
    const stopped = await trainLLM(m, data, o, { onEpoch: (r) => epochs.push(r.epoch) }, 2, { epoch: 1, ndcg20: 0.5 }, 1);
    expect(stopped.stoppedEarly).toBe(true);
    expect(epochs).toEqual([]);
    const goesOn = await trainLLM(m, data, { ...o, epochs: 3 }, { onEpoch: (r) => epochs.push(r.epoch) }, 2, { epoch: 1, ndcg20: 0.5 }, 0);
    expect(epochs).toEqual([3]);
    expect(goesOn.history.length).toBe(1);
    m.dispose();
  });

  it('the backbone refuses bad states with errors naming the tensor', () => {
    const vocab = llmInputs(join(tmp.dir, 'base'), split, cfg).vocab;
    const m = LLM4Rec.create({ t5: t5Config('t5-tiny', vocab.size), queries: 2, projHidden: [16], itemDim: D }, vocab, 1);
    const s = m.t5.getOptimizerState();
    expect(s.steps).toBe(0);
    const name = 'encoder.block.0.layer.1.DenseReluDense.wi.weight';
    const withStep = { ...s, steps: 2 };
    expect(() => m.t5.setOptimizerState({ ...withStep, v: { ...s.v, [name]: new Float32Array(3) } })).toThrow(`optimizer state v['${name}'] has 3 values`);
    const { [name]: _gone, ...missing } = s.m;
    expect(() => m.t5.setOptimizerState({ ...withStep, m: missing })).toThrow(`optimizer state m['${name}'] is missing`);
    expect(() => m.t5.setOptimizerState({ ...withStep, m: { ...s.m, extra: new Float32Array(1) } })).toThrow(/'extra' this T5 does not have/);
    const nan = s.m[name].slice();
    nan[4] = NaN;
    expect(() => m.t5.setOptimizerState({ ...withStep, m: { ...s.m, [name]: nan } })).toThrow(new RegExp(`first moment of '${name.replace(/\./g, '\\.')}'\\[4\\] is -?nan`));
    const neg = s.v[name].slice();
    neg[2] = -0.5;
    expect(() => m.t5.setOptimizerState({ ...withStep, v: { ...s.v, [name]: neg } })).toThrow(`second moment of '${name}'[2] is negative`);
    expect(() => m.t5.setOptimizerState({ ...s, steps: -1 })).toThrow(/steps must be a non-negative integer/);
    expect(() => m.t5.setOptimizerState({ ...s, m: { ...s.m, [name]: Float32Array.from(s.m[name], () => 1) } })).toThrow(/steps is 0 but the moments/);
    m.t5.setOptimizerState(withStep);
    expect(m.t5.getOptimizerState().steps).toBe(2);
    m.dispose();
  });

  it('the projection (Mlp) refuses bad states with errors naming the tensor', () => {
    const p = new Mlp([4, 3, 2], 1);
    expect(p.optimizerState()).toEqual({ t: 0, m: [], v: [] });
    p.forward(new Float32Array(8).fill(0.5), 2, true);
    p.backward(new Float32Array(4).fill(1));
    p.step({ lr: 0.01 });
    const s = p.optimizerState();
    expect(s.m.map((a) => a.length)).toEqual([12, 6, 3, 2]);
    const with_ = (k: 'm' | 'v', i: number, a: Float32Array) => ({ ...s, [k]: s[k].map((x, j) => (j === i ? a : x)) });
    expect(() => p.setOptimizerState(with_('m', 1, new Float32Array(5)))).toThrow('m of weights[1] has 5 values, expected 6');
    expect(() => p.setOptimizerState({ ...s, v: s.v.slice(1) })).toThrow('v has 3 tensors, the MLP has 4');
    expect(() => p.setOptimizerState(with_('v', 2, Float32Array.of(0, -1, 0)))).toThrow('v of biases[0][1] is negative');
    expect(() => p.setOptimizerState(with_('m', 3, Float32Array.of(0, NaN)))).toThrow('m of biases[1][1] is NaN');
    expect(() => p.setOptimizerState({ t: 2, m: [], v: [] })).toThrow('t = 2 steps but no moments');
    expect(() => p.setOptimizerState({ ...s, t: 1.5 })).toThrow('t must be a non-negative integer');
    expect(p.optimizerState()).toEqual(s); // unchanged by the refused states
    // The state is copied both ways: changing a returned copy does not touch the optimiser.
    s.m[0][0] = 123;
    expect(p.optimizerState().m[0][0]).not.toBe(123);
  });
});
