import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, f32, writeSafetensors, type TensorMap } from '../lib/io/safetensors.js';
import { t5Config, t5TensorShapes, type T5Config } from '../lib/t5/config.js';
import { T5Model, padSequences, relativePositionBuckets } from '../lib/t5/model.js';
import { learningRate } from '../lib/t5/schedule.js';
import { rng } from './helpers/random.js';

const fixture = readSafetensors(join(import.meta.dirname, 'fixtures', 't5-tiny.safetensors'));
const fxConfig = JSON.parse(fixture.metadata.config) as T5Config;
const fxBatch = JSON.parse(fixture.metadata.batch) as { B: number; S: number; T: number };
const fx = (name: string) => fixture.tensors[name].data;

function weightsOf(config: T5Config, tensors: TensorMap): TensorMap {
  const out: TensorMap = {};
  for (const name of Object.keys(t5TensorShapes(config))) out[name] = tensors[name];
  return out;
}

// Largest |a - b| relative to the largest |b| (errors of float32 vs a float64 reference).
function relErr(a: Float32Array, b: Float32Array | Int32Array): number {
  expect(a.length).toBe(b.length);
  let err = 0, scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

describe('T5 backbone: parity with an independent PyTorch reference (scripts/fixtures/t5_reference.py)', () => {
  it('relative position buckets equal the reference for t5-small and t5-tiny settings', () => {
    const positions = Int32Array.from({ length: 401 }, (_, i) => i - 200);
    for (const [nb, md] of [[32, 128], [8, 16]]) {
      for (const bidir of [true, false]) {
        const ours = relativePositionBuckets(positions, bidir, nb, md);
        expect(Array.from(ours)).toEqual(Array.from(fx(`buckets.${bidir ? 'bi' : 'uni'}_${nb}_${md}`)));
      }
    }
  });

  it('forward (decoder final states) matches', async () => {
    const model = T5Model.fromTensors(fxConfig, weightsOf(fxConfig, fixture.tensors), 'fixture');
    const out = await model.forward({
      inputIds: fx('input_ids') as Int32Array,
      attentionMask: fx('attention_mask') as Int32Array,
      decoderInputIds: fx('decoder_input_ids') as Int32Array,
      batchSize: fxBatch.B,
    });
    expect(out.length).toBe(fxBatch.B * fxBatch.T * fxConfig.dModel);
    expect(relErr(out, fx("output"))).toBeLessThan(1e-5);
    model.dispose();
  });

  it('backward: parameter and input-embedding gradients match', async () => {
    const model = T5Model.fromTensors(fxConfig, weightsOf(fxConfig, fixture.tensors), 'fixture');
    const out = await model.forward({
      inputIds: fx('input_ids') as Int32Array,
      attentionMask: fx('attention_mask') as Int32Array,
      decoderInputIds: fx('decoder_input_ids') as Int32Array,
      batchSize: fxBatch.B,
      train: true,
    });
    expect(relErr(out, fx("output"))).toBeLessThan(1e-5); // dropout 0: train = eval
    await model.zeroGrad();
    await model.backward(fx('grad_output') as Float32Array);
    const grads = model.getGradients();
    const names = Object.keys(fixture.tensors).filter((n) => n.startsWith('grad.') && !n.includes('inputs_embeds'));
    expect(names.length).toBeGreaterThan(15);
    for (const n of names) {
      const e = relErr(grads[n.slice(5)], fx(n));
      expect(e, n).toBeLessThan(2e-5);
    }
    const ig = model.inputGradients();
    expect(ig).not.toBeNull();
    expect(relErr(ig!.encoder, fx('grad.encoder_inputs_embeds'))).toBeLessThan(2e-5);
    expect(relErr(ig!.decoder, fx('grad.decoder_inputs_embeds'))).toBeLessThan(2e-5);
    // Padded encoder positions get no gradient.
    const mask = fx('attention_mask');
    const d = fxConfig.dModel;
    for (let p = 0; p < mask.length; p++) if (mask[p] === 0) for (let i = 0; i < d; i++) expect(ig!.encoder[p * d + i]).toBe(0);
    model.dispose();
  });
});

describe('T5Model API', () => {
  const cfg = t5Config('t5-tiny', 30);

  it('has the Hugging Face tensor names and shapes of its config', () => {
    const m = T5Model.create(cfg, 1);
    expect(m.tensorShapes()).toEqual(t5TensorShapes(cfg));
    const total = Object.values(t5TensorShapes(cfg)).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    expect(m.numParameters()).toBe(total);
    m.dispose();
  });

  it('is deterministic for a seed; different seeds differ', () => {
    const a = T5Model.create(cfg, 5), b = T5Model.create(cfg, 5), c = T5Model.create(cfg, 6);
    expect(a.getTensors()['shared.weight']).toEqual(b.getTensors()['shared.weight']);
    expect(a.getTensors()['shared.weight']).not.toEqual(c.getTensors()['shared.weight']);
    for (const m of [a, b, c]) m.dispose();
  });

  it('training is reproducible for a seed (dropout included)', async () => {
    const cfgD = t5Config('t5-tiny', 30, { dropoutRate: 0.2 });
    const batch = { inputIds: new Int32Array([1, 2, 3, 4, 5, 6]), decoderInputIds: new Int32Array([0, 5, 0, 7]), batchSize: 2, train: true };
    const run = async () => {
      const m = T5Model.create(cfgD, 9);
      const outs: Float32Array[] = [];
      for (let s = 0; s < 3; s++) {
        const out = await m.forward(batch);
        outs.push(out);
        await m.zeroGrad();
        await m.backward(out); // d(0.5 |out|^2)
        await m.step({ lr: 1e-2, weightDecay: 0.1, clipNorm: 1 });
      }
      const w = m.getTensors()['encoder.block.0.layer.1.DenseReluDense.wi.weight'];
      m.dispose();
      return { outs, w };
    };
    const a = await run(), b = await run();
    expect(a.w).toEqual(b.w);
    for (let s = 0; s < 3; s++) expect(a.outs[s]).toEqual(b.outs[s]);
  });

  it('saves and loads safetensors checkpoints; bad names and shapes are clear errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 't5-'));
    try {
      const m = T5Model.create(cfg, 3);
      const path = join(dir, 'backbone.safetensors');
      m.save(path);
      const back = T5Model.load(path, cfg);
      const batch = { inputIds: new Int32Array([1, 2, 3, 4]), decoderInputIds: new Int32Array([0, 5]), batchSize: 2 };
      expect(await back.forward(batch)).toEqual(await m.forward(batch));
      // Wrong shape.
      const t = readSafetensors(path).tensors;
      const bad: TensorMap = { ...t, 'encoder.block.0.layer.0.SelfAttention.q.weight': f32([16, 32], new Float32Array(512)) };
      expect(() => T5Model.fromTensors(cfg, bad, 'bad.safetensors')).toThrow(/q\.weight' has shape \[16,32\], expected \[32,32\]/);
      // Missing tensor.
      const missing = { ...t };
      delete missing['decoder.final_layer_norm.weight'];
      expect(() => T5Model.fromTensors(cfg, missing, 'm')).toThrow(/decoder\.final_layer_norm\.weight' is missing/);
      // Unknown tensor (a checkpoint of another model), but HF's extra copies are accepted.
      expect(() => T5Model.fromTensors(cfg, { ...t, 'encoder.block.9.x.weight': f32([1], new Float32Array(1)) }, 'u')).toThrow(/unexpected tensor/);
      const hf = { ...t, 'lm_head.weight': t['shared.weight'], 'encoder.embed_tokens.weight': t['shared.weight'] };
      T5Model.fromTensors(cfg, hf, 'hf').dispose();
      // A config that does not match the file.
      expect(() => T5Model.load(path, t5Config('t5-tiny', 31))).toThrow(/shared\.weight' has shape \[30,32\], expected \[31,32\]/);
      // Non-finite weights.
      writeSafetensors(join(dir, 'nan.safetensors'), { ...t, 'shared.weight': f32([30, 32], new Float32Array(960).fill(NaN)) });
      expect(() => T5Model.load(join(dir, 'nan.safetensors'), cfg)).toThrow(/non-finite/);
      m.dispose();
      back.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad inputs with errors naming them, and use after dispose', async () => {
    const m = T5Model.create(cfg, 1);
    const ok = { inputIds: new Int32Array([1, 2, 3, 4]), decoderInputIds: new Int32Array([0, 5]), batchSize: 2 };
    expect(() => m.forward({ ...ok, inputIds: new Int32Array([1, 2, 30, 4]) })).toThrow(/inputIds\[2\] = 30/);
    expect(() => m.forward({ ...ok, decoderInputIds: new Int32Array([0, 5, 1]) })).toThrow(/decoderInputIds\.length/);
    expect(() => m.forward({ ...ok, attentionMask: new Int32Array([1, 0, 0, 0]) })).toThrow(/row 1 is all padding/);
    expect(() => m.forward({ ...ok, attentionMask: new Int32Array([1, 2, 1, 1]) })).toThrow(/must be 0 or 1/);
    expect(() => m.forward({ ...ok, inputIds: new Float32Array(4) as unknown as Int32Array })).toThrow(/Int32Array/);
    await expect(m.backward(new Float32Array(64))).rejects.toThrow(/no train forward/);
    await m.forward({ ...ok, train: true });
    await expect(m.backward(new Float32Array(3))).rejects.toThrow(/gradOutput\.length/);
    expect(() => m.step({ lr: -1 })).toThrow(/lr/);
    expect(() => m.setTensors({ 'nope.weight': new Float32Array(1) })).toThrow(/no tensor named 'nope\.weight'/);
    expect(() => m.setTensors({ 'shared.weight': new Float32Array(1) })).toThrow(/960 values/);
    const g = new Float32Array(2 * 32).fill(NaN);
    await expect(m.backward(g)).rejects.toThrow(/not finite/);
    m.dispose();
    expect(() => m.forward(ok)).toThrow(/disposed/);
    expect(() => m.getTensors()).toThrow(/disposed/);
  });

  it('queues calls in order without awaiting each; step reports the gradient norm and clips', async () => {
    const m = T5Model.create(cfg, 2);
    const ok = { inputIds: new Int32Array([1, 2, 3, 4]), decoderInputIds: new Int32Array([0, 5]), batchSize: 2, train: true };
    const before = m.getTensors()['decoder.block.0.layer.2.DenseReluDense.wo.weight'];
    const fwd = m.forward(ok);
    const bwd = m.backward(new Float32Array(2 * 32).fill(1));
    const st = m.step({ lr: 1e-2, clipNorm: 1e-3 });
    await fwd;
    await bwd;
    const { gradNorm } = await st;
    expect(gradNorm).toBeGreaterThan(0);
    const after = m.getTensors()['decoder.block.0.layer.2.DenseReluDense.wo.weight'];
    let moved = 0;
    for (let i = 0; i < after.length; i++) moved = Math.max(moved, Math.abs(after[i] - before[i]));
    expect(moved).toBeGreaterThan(1e-3); // Adam's first step moves by ~lr whatever the scale
    expect(moved).toBeLessThan(1.1e-2);
    m.dispose();
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly, then decays linearly or by cosine', () => {
    const s = { peak: 1, warmupSteps: 4, totalSteps: 14 };
    expect([0, 1, 2, 3].map((t) => learningRate(s, t))).toEqual([0.25, 0.5, 0.75, 1]);
    expect(learningRate(s, 9)).toBeCloseTo(0.5);
    expect(learningRate(s, 14)).toBe(0);
    expect(learningRate(s, 99)).toBe(0);
    const c = { ...s, decay: 'cosine' as const, minRatio: 0.1 };
    expect(learningRate(c, 4)).toBeCloseTo(1);
    expect(learningRate(c, 9)).toBeCloseTo(0.55);
    expect(learningRate(c, 14)).toBeCloseTo(0.1);
    expect(() => learningRate({ ...s, warmupSteps: 20 }, 0)).toThrow(/warmupSteps/);
  });
});

describe('T5 learns: a tiny T5 fits a toy sequence-to-vector task', () => {
  it('drives a mean-pooled linear head to near-zero loss', async () => {
    // 8 examples: a set of 4 tokens -> a fixed random vector in R^6, predicted by a linear head
    // on the mean of the decoder states (decoder input: a fixed 3-token prompt).
    const cfg = t5Config('t5-tiny', 40, { dropoutRate: 0 });
    const model = T5Model.create(cfg, 11);
    const rand = rng(123);
    const B = 8, S = 4, T = 3, K = 6, d = cfg.dModel;
    const seqs = Array.from({ length: B }, () => Array.from({ length: S }, () => 3 + Math.floor(rand() * 37)));
    const { ids } = padSequences(seqs);
    const dec = new Int32Array(B * T);
    for (let b = 0; b < B; b++) dec.set([0, 1, 2], b * T);
    const Y = Float32Array.from({ length: B * K }, () => rand() * 2 - 1);
    const W = Float32Array.from({ length: K * d }, () => (rand() * 2 - 1) * 0.1);
    const mW = new Float32Array(W.length), vW = new Float32Array(W.length);
    let first = 0, last = 0;
    const steps = 250;
    for (let step = 0; step < steps; step++) {
      const out = await model.forward({ inputIds: ids, decoderInputIds: dec, batchSize: B, train: true });
      const grad = new Float32Array(out.length), gW = new Float32Array(W.length);
      let loss = 0;
      for (let b = 0; b < B; b++) {
        const mean = new Float32Array(d);
        for (let t = 0; t < T; t++) for (let i = 0; i < d; i++) mean[i] += out[(b * T + t) * d + i] / T;
        for (let k = 0; k < K; k++) {
          let p = 0;
          for (let i = 0; i < d; i++) p += W[k * d + i] * mean[i];
          const r = p - Y[b * K + k];
          loss += (r * r) / (B * K);
          const dp = (2 * r) / (B * K);
          for (let i = 0; i < d; i++) {
            gW[k * d + i] += dp * mean[i];
            for (let t = 0; t < T; t++) grad[(b * T + t) * d + i] += (dp * W[k * d + i]) / T;
          }
        }
      }
      if (step === 0) first = loss;
      last = loss;
      await model.zeroGrad();
      await model.backward(grad);
      const lr = learningRate({ peak: 3e-3, warmupSteps: 10, totalSteps: steps, decay: 'cosine', minRatio: 0.1 }, step);
      await model.step({ lr, weightDecay: 0.01, clipNorm: 1 });
      // Adam on the head, in TypeScript.
      for (let i = 0; i < W.length; i++) {
        mW[i] = 0.9 * mW[i] + 0.1 * gW[i];
        vW[i] = 0.999 * vW[i] + 0.001 * gW[i] * gW[i];
        const mh = mW[i] / (1 - 0.9 ** (step + 1)), vh = vW[i] / (1 - 0.999 ** (step + 1));
        W[i] -= (lr * 3 * mh) / (Math.sqrt(vh) + 1e-8);
      }
    }
    expect(first).toBeGreaterThan(0.1);
    expect(last).toBeLessThan(first * 0.01);
    model.dispose();
  });
});
