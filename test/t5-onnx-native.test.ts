// Parity of the native T5 forward (lib/t5/model.ts) with the exported ONNX graph run by ONNX
// Runtime, and of both with the PyTorch reference fixture.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readSafetensors } from '../lib/io/safetensors.js';
import { loadT5Checkpoint } from '../lib/t5/checkpoint.js';
import { exportT5Onnx, mlpHead, t5BucketTable } from '../lib/t5/onnx-export.js';
import { Mlp } from '../lib/nn/mlp.js';
import { T5Model, relativePositionBuckets } from '../lib/t5/model.js';
import { t5Config, type T5Config } from '../lib/t5/config.js';
import { runOnnxT5 } from '../lib/onnx/t5-runner.js';
import { rng } from './helpers/random.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/t5-tiny-onnx.safetensors', import.meta.url));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('native T5 forward vs ONNX Runtime', () => {
  it('relative-position buckets: native == exporter table for offsets -300..300', () => {
    const offsets = Int32Array.from({ length: 601 }, (_, i) => i - 300);
    for (const [nb, maxD] of [[32, 128], [8, 16], [8, 12], [16, 40]]) {
      for (const bidirectional of [true, false]) {
        const table = t5BucketTable(bidirectional, nb, maxD);
        const mine = Array.from(offsets, (o) => Number(table[Math.min(Math.max(o, -maxD), maxD) + maxD]));
        expect(Array.from(relativePositionBuckets(offsets, bidirectional, nb, maxD)), `${nb}/${maxD}/${bidirectional}`).toEqual(mine);
      }
    }
  });

  it('fixture weights: native, ONNX and PyTorch agree within 1e-4', async () => {
    const f = readSafetensors(FIXTURE);
    const config = JSON.parse(f.metadata.config) as T5Config;
    const weights = loadT5Checkpoint(FIXTURE, config);
    const onnx = exportT5Onnx(config, weights);
    const native = T5Model.fromTensors(config, weights);
    try {
      for (const name of ['casea', 'caseb']) {
        const ids = f.tensors[`${name}.input_ids`];
        const dec = f.tensors[`${name}.decoder_input_ids`];
        const batch = { inputIds: ids.data as Int32Array, attentionMask: f.tensors[`${name}.attention_mask`].data as Int32Array, decoderInputIds: dec.data as Int32Array };
        const n = await native.forward({ ...batch, batchSize: ids.shape[0] });
        const o = await runOnnxT5(onnx, { ...batch, batch: ids.shape[0], encLen: ids.shape[1], decLen: dec.shape[1] });
        const ref = f.tensors[`${name}.decoder_hidden`].data as Float32Array;
        expect(maxAbsDiff(n, o.decoderHidden), `${name} native vs onnx`).toBeLessThan(1e-4);
        expect(maxAbsDiff(n, ref), `${name} native vs torch`).toBeLessThan(1e-4);
      }
    } finally {
      native.dispose();
    }
  });

  it('t5-mini with its own initialisation, sequences longer than max_distance: native == ONNX', async () => {
    const config = t5Config('t5-mini', 300, { dropoutRate: 0 });
    const native = T5Model.create(config, 5);
    try {
      const onnx = exportT5Onnx(config, native.getTensors());
      const rand = rng(9);
      const B = 2, S = 140, T = 20; // encoder offsets up to 139 > 128 (clipped), and 64 (a bucket boundary)
      const inputIds = Int32Array.from({ length: B * S }, () => 1 + Math.floor(rand() * 299));
      const attentionMask = new Int32Array(B * S).fill(1);
      attentionMask.fill(0, S + 100); // second row: 40 padding positions
      const decoderInputIds = Int32Array.from({ length: B * T }, () => Math.floor(rand() * 300));
      const n = await native.forward({ inputIds, attentionMask, decoderInputIds, batchSize: B });
      const o = await runOnnxT5(onnx, { inputIds, attentionMask, decoderInputIds, batch: B, encLen: S, decLen: T });
      let scale = 0;
      for (const v of n) scale = Math.max(scale, Math.abs(v));
      expect(scale).toBeGreaterThan(0.1);
      expect(maxAbsDiff(n, o.decoderHidden)).toBeLessThan(1e-4 * Math.max(1, scale));
    } finally {
      native.dispose();
    }
  });

  it('with the LLM4Rec projection (lib/nn/mlp.ts) as head: z == Mlp.forward(native decoder states)', async () => {
    const config = t5Config('t5-tiny', 60, { numEncoderLayers: 2, numDecoderLayers: 2, dropoutRate: 0 });
    const native = T5Model.create(config, 11);
    try {
      const T = 4;
      const proj = new Mlp([T * config.dModel, 48, 24, 8], 3);
      const onnx = exportT5Onnx(config, native.getTensors(), { head: mlpHead(proj.sizes, proj.weights, proj.biases) });
      const rand = rng(21);
      const B = 3, S = 11;
      const inputIds = Int32Array.from({ length: B * S }, () => 1 + Math.floor(rand() * 59));
      const attentionMask = Int32Array.from({ length: B * S }, (_, i) => (i % S < S - (i / S | 0) * 3 ? 1 : 0));
      const decoderInputIds = Int32Array.from({ length: B * T }, (_, i) => 50 + (i % T)); // fixed query tokens
      const h = await native.forward({ inputIds, attentionMask, decoderInputIds, batchSize: B });
      const z = proj.forward(h, B);
      const o = await runOnnxT5(onnx, { inputIds, attentionMask, decoderInputIds, batch: B, encLen: S, decLen: T });
      expect(o.z!.length).toBe(B * 8);
      expect(maxAbsDiff(o.z!, z)).toBeLessThan(1e-4);
      expect(() => mlpHead([4, 2], [], [])).toThrow(/2 sizes need 1 weights/);
    } finally {
      native.dispose();
    }
  });
});
