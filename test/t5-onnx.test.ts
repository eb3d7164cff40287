// Parity of the exported T5 graph (run by ONNX Runtime) with an independent PyTorch reference
// (scripts/fixtures/t5_onnx_reference.py -> test/fixtures/t5-tiny-onnx.safetensors).
// To add native-vs-ONNX parity: run the native forward on `fixtureCase(...)` and compare with
// `runOnnxT5(model, inputs)` the same way `expectClose` does below.
import { describe, expect, it, beforeAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readSafetensors, type TensorMap } from '../lib/io/safetensors.js';
import { loadT5Checkpoint } from '../lib/t5/checkpoint.js';
import { exportT5Onnx, t5BucketTable, type T5HeadLayer } from '../lib/t5/onnx-export.js';
import { validateT5Config, type T5Config } from '../lib/t5/config.js';
import { runOnnxT5, type T5OnnxInputs } from '../lib/onnx/t5-runner.js';
import { OnnxSession } from '../lib/onnx/session.js';
import { decodeModel } from '../lib/onnx/builder.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/t5-tiny-onnx.safetensors', import.meta.url));

function fixtureCase(t: TensorMap, name: 'casea' | 'caseb'): T5OnnxInputs & { decoderHidden: Float32Array; encoderHidden: Float32Array } {
  const ids = t[`${name}.input_ids`];
  const dec = t[`${name}.decoder_input_ids`];
  return {
    inputIds: ids.data as Int32Array,
    attentionMask: t[`${name}.attention_mask`].data as Int32Array,
    decoderInputIds: dec.data as Int32Array,
    batch: ids.shape[0],
    encLen: ids.shape[1],
    decLen: dec.shape[1],
    decoderHidden: t[`${name}.decoder_hidden`].data as Float32Array,
    encoderHidden: t[`${name}.encoder_hidden`].data as Float32Array,
  };
}

function expectClose(got: Float32Array, want: Float32Array, tol: number, what: string): number {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst, `${what}: max |onnx - reference|`).toBeLessThan(tol);
  return worst;
}

describe('T5 ONNX export vs the PyTorch reference', () => {
  let fixture: TensorMap;
  let config: T5Config;
  let weights: Record<string, Float32Array>;
  let model: Uint8Array;

  beforeAll(() => {
    const f = readSafetensors(FIXTURE);
    fixture = f.tensors;
    config = JSON.parse(f.metadata.config) as T5Config;
    validateT5Config(config);
    weights = loadT5Checkpoint(FIXTURE, config);
    model = exportT5Onnx(config, weights, { outputEncoderHidden: true });
  });

  it('bucket tables equal HF bucketing of offsets -300..300', () => {
    for (const [nb, maxD] of [[8, 12], [8, 16], [32, 128]]) {
      for (const dir of ['bi', 'uni']) {
        const want = fixture[`buckets.${nb}.${maxD}.${dir}`].data as Int32Array;
        const table = t5BucketTable(dir === 'bi', nb, maxD);
        // Offsets beyond ±maxD read the table's ends, as the graph's Clip does.
        const got = Array.from({ length: 601 }, (_, i) => Number(table[Math.min(Math.max(i - 300, -maxD), maxD) + maxD]));
        expect(got, `buckets ${nb}/${maxD}/${dir}`).toEqual(Array.from(want));
      }
    }
  });

  it('matches within 1e-4 for two batch sizes and lengths from one model (dynamic shapes, padding)', async () => {
    const session = await OnnxSession.create(model, { intraOpNumThreads: 1 });
    expect(session.inputs.map((i) => i.shape)).toEqual([['batch', 'enc_len'], ['batch', 'enc_len'], ['batch', 'dec_len']]);
    for (const name of ['casea', 'caseb'] as const) {
      const c = fixtureCase(fixture, name);
      const out = await runOnnxT5(session, c);
      const err = expectClose(out.decoderHidden, c.decoderHidden, 1e-4, `${name} decoder_hidden`);
      expectClose(out.encoderHidden!, c.encoderHidden, 1e-4, `${name} encoder_hidden`);
      expect(err).toBeGreaterThanOrEqual(0);
    }
    await session.dispose();
  });

  it('padded encoder positions do not leak into the decoder; the mask may be float', async () => {
    const c = fixtureCase(fixture, 'caseb');
    const ids = Int32Array.from(c.inputIds as Int32Array);
    const mask = c.attentionMask as Int32Array;
    for (let i = 0; i < ids.length; i++) if (mask[i] === 0) ids[i] = 1 + (i % (config.vocabSize - 1));
    const floatModel = exportT5Onnx(config, weights, { attentionMaskType: 'float' });
    const out = await runOnnxT5(floatModel, { ...c, inputIds: ids, attentionMask: Float32Array.from(mask) });
    expectClose(out.decoderHidden, c.decoderHidden, 1e-4, 'changed padding ids');
    // Without the mask the padding is attended to and the result changes.
    const unmasked = await runOnnxT5(model, { ...c, inputIds: ids, attentionMask: new Int32Array(mask.length).fill(1) });
    let diff = 0;
    for (let i = 0; i < unmasked.decoderHidden.length; i++) diff = Math.max(diff, Math.abs(unmasked.decoderHidden[i] - c.decoderHidden[i]));
    expect(diff).toBeGreaterThan(1e-2);
  });

  it('decoder is causal: a later decoder token does not change earlier states', async () => {
    const c = fixtureCase(fixture, 'casea');
    const dec = Int32Array.from(c.decoderInputIds as Int32Array);
    for (let b = 0; b < c.batch; b++) dec[b * c.decLen + c.decLen - 1] = (dec[b * c.decLen + c.decLen - 1] + 7) % config.vocabSize;
    const out = await runOnnxT5(model, { ...c, decoderInputIds: dec });
    const d = config.dModel;
    for (let b = 0; b < c.batch; b++) {
      for (let t = 0; t < c.decLen; t++) {
        const off = (b * c.decLen + t) * d;
        const got = out.decoderHidden.subarray(off, off + d);
        const want = c.decoderHidden.subarray(off, off + d);
        const delta = Math.max(...Array.from(got, (v, i) => Math.abs(v - want[i])));
        if (t < c.decLen - 1) expect(delta, `b${b} t${t}`).toBeLessThan(1e-4);
        else expect(delta, `b${b} last`).toBeGreaterThan(1e-3);
      }
    }
  });

  it('head: z equals the reference; the decoder length is fixed by the head', async () => {
    const head: T5HeadLayer[] = [0, 1].map((i) => {
      const w = fixture[`head.${i}.weight`];
      return { weight: w.data as Float32Array, bias: fixture[`head.${i}.bias`].data as Float32Array, outFeatures: w.shape[0], inFeatures: w.shape[1], activation: i === 0 ? 'relu' : 'none' };
    });
    const bytes = exportT5Onnx(config, weights, { head, metadata: { note: 'head test' } });
    const meta = Object.fromEntries(decodeModel(bytes).metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta['tokenrec.t5_config'])).toEqual(config);
    expect(meta.note).toBe('head test');
    const s = await OnnxSession.create(bytes);
    expect(s.inputs[2].shape).toEqual(['batch', 5]);
    expect(s.outputs.map((o) => [o.name, o.shape])).toEqual([['decoder_hidden', ['batch', 5, 16]], ['z', ['batch', 8]]]);
    const c = fixtureCase(fixture, 'casea');
    const out = await runOnnxT5(s, c);
    expectClose(out.z!, fixture['casea.z'].data as Float32Array, 1e-4, 'z');
    expectClose(out.decoderHidden, c.decoderHidden, 1e-4, 'decoder_hidden with head');
    const b = fixtureCase(fixture, 'caseb');
    await expect(runOnnxT5(s, b)).rejects.toThrow(/decoder_input_ids': dimension 1 must be 5/);
    await s.dispose();
  });

  it('runOnnxT5 checks ids, mask and lengths before running; opset 13 works too', async () => {
    const c = fixtureCase(fixture, 'casea');
    const bad = Int32Array.from(c.inputIds as Int32Array);
    bad[3] = 40;
    await expect(runOnnxT5(model, { ...c, inputIds: bad }, { vocabSize: 40 })).rejects.toThrow(/input_ids\[3\] = 40 is outside the vocabulary \[0, 40\)/);
    await expect(runOnnxT5(model, { ...c, inputIds: bad })).rejects.toThrow(/ONNX Runtime failed.*indices/);
    await expect(runOnnxT5(model, { ...c, decLen: 4 })).rejects.toThrow(/decoder_input_ids: expected 8 ids/);
    await expect(runOnnxT5(model, { ...c, attentionMask: new Int32Array(14).fill(2) })).rejects.toThrow(/attention_mask\[0\] = 2/);
    await expect(runOnnxT5(model, { ...c, batch: 0 })).rejects.toThrow(/batch must be a positive integer/);
    const old = exportT5Onnx(config, weights, { opset: 13 });
    const out = await runOnnxT5(old, c, { vocabSize: 40, allowSpinning: false, intraOpNumThreads: 2 });
    expectClose(out.decoderHidden, c.decoderHidden, 1e-4, 'opset 13');
    expect(() => exportT5Onnx(config, weights, { opset: 12 })).toThrow(/opset must be 13..17/);
  });

  it('export rejects bad weights and heads with errors naming them', () => {
    const missing = { ...weights };
    delete missing['decoder.block.1.layer.1.EncDecAttention.k.weight'];
    expect(() => exportT5Onnx(config, missing)).toThrow(/'decoder.block.1.layer.1.EncDecAttention.k.weight' \[18,16\] is missing/);
    const short = { ...weights, 'shared.weight': new Float32Array(10) };
    expect(() => exportT5Onnx(config, short)).toThrow(/'shared.weight' has 10 values, expected \[40,16\]/);
    const nan = { ...weights, 'encoder.final_layer_norm.weight': Float32Array.from(weights['encoder.final_layer_norm.weight']) };
    nan['encoder.final_layer_norm.weight'][3] = NaN;
    expect(() => exportT5Onnx(config, nan)).toThrow(/non-finite.*index 3/);
    const layer = (i: number, o: number): T5HeadLayer => ({ weight: new Float32Array(i * o), bias: new Float32Array(o), inFeatures: i, outFeatures: o, activation: 'none' });
    expect(() => exportT5Onnx(config, weights, { head: [layer(17, 4)] })).toThrow(/multiple of dModel/);
    expect(() => exportT5Onnx(config, weights, { head: [layer(32, 4), layer(5, 2)] })).toThrow(/layer 1 inFeatures \(5\) must equal layer 0 outFeatures \(4\)/);
    expect(() => exportT5Onnx(config, weights, { head: [{ ...layer(32, 4), bias: new Float32Array(3) }] })).toThrow(/bias must be/);
  });
});
