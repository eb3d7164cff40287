import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { OnnxWorkerSession } from '../lib/onnx/worker-session.js';
import { OnnxSession } from '../lib/onnx/session.js';
import { runOnnxT5 } from '../lib/onnx/t5-runner.js';
import { exportT5Onnx } from '../lib/t5/onnx-export.js';
import { loadT5Checkpoint } from '../lib/t5/checkpoint.js';
import { readSafetensors } from '../lib/io/safetensors.js';
import { t5Config, t5TensorShapes, type T5Config } from '../lib/t5/config.js';
import { rng } from './helpers/random.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/t5-tiny-onnx.safetensors', import.meta.url));

function fixtureModel() {
  const f = readSafetensors(FIXTURE);
  const config = JSON.parse(f.metadata.config) as T5Config;
  return { f: f.tensors, config, model: exportT5Onnx(config, loadT5Checkpoint(FIXTURE, config)) };
}

describe('OnnxWorkerSession', () => {
  it('gives the same results as the inline session, with the same input checks', async () => {
    const { f, model } = fixtureModel();
    const w = await OnnxWorkerSession.create(model, { intraOpNumThreads: 1 });
    expect(w.provider).toBe('cpu');
    expect(w.inputs.map((i) => i.name)).toEqual(['input_ids', 'attention_mask', 'decoder_input_ids']);
    const c = {
      inputIds: f['caseb.input_ids'].data as Int32Array,
      attentionMask: f['caseb.attention_mask'].data as Int32Array,
      decoderInputIds: f['caseb.decoder_input_ids'].data as Int32Array,
      batch: 3, encLen: 15, decLen: 9,
    };
    // Several runs in flight at once come back to the right callers.
    const [a, b] = await Promise.all([runOnnxT5(w, c), runOnnxT5(w, { ...c, decoderInputIds: new Int32Array(27).fill(3) })]);
    const inline = await runOnnxT5(model, c);
    expect(Array.from(a.decoderHidden)).toEqual(Array.from(inline.decoderHidden));
    const want = f['caseb.decoder_hidden'].data as Float32Array;
    expect(Math.max(...Array.from(a.decoderHidden, (v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-4);
    expect(Array.from(b.decoderHidden)).not.toEqual(Array.from(a.decoderHidden));

    await expect(w.run({ input_ids: { data: new Float32Array(2), dims: [1, 2] } })).rejects.toThrow(/missing input 'attention_mask'|input 'input_ids': expected int64/);
    await expect(runOnnxT5(w, { ...c, inputIds: new Int32Array(45).fill(99) })).rejects.toThrow(/ONNX Runtime failed.*indices/);
    // Still usable after an error inside the worker.
    expect((await runOnnxT5(w, c)).decoderHidden.length).toBe(3 * 9 * 16);
    await w.dispose();
    expect(w.disposed).toBe(true);
    await expect(runOnnxT5(w, c)).rejects.toThrow(/disposed/);
    await w.dispose();
  });

  it('keeps the event loop free while it computes', async () => {
    // t5-mini at batch 16 takes tens of milliseconds per run on this machine.
    const config = t5Config('t5-mini', 500);
    const rand = rng(3);
    const w: Record<string, Float32Array> = {};
    for (const [name, shape] of Object.entries(t5TensorShapes(config))) w[name] = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() - 0.5) * 0.2);
    const model = exportT5Onnx(config, w);
    const B = 16;
    const inputs = { inputIds: new Int32Array(B * 64).fill(5), attentionMask: new Int32Array(B * 64).fill(1), decoderInputIds: new Int32Array(B * 20).fill(7), batch: B, encLen: 64, decLen: 20 };
    const ticksDuring = async (runner: OnnxWorkerSession | OnnxSession) => {
      let ticks = 0;
      let longestGap = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        ticks++;
      }, 1);
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await runOnnxT5(runner, inputs);
      const ms = performance.now() - t0;
      clearInterval(timer);
      return { ticks, longestGap, ms };
    };
    const inline = await OnnxSession.create(model, { intraOpNumThreads: 1 });
    const worker = await OnnxWorkerSession.create(model, { intraOpNumThreads: 1 });
    const a = await ticksDuring(inline);
    const b = await ticksDuring(worker);
    await inline.dispose();
    await worker.dispose();
    console.log(`event-loop ticks during 3 runs: inline ${JSON.stringify(a)}, worker ${JSON.stringify(b)}`);
    // Inline, the timer only fires between runs; in a worker it keeps firing during each run.
    expect(a.ticks).toBeLessThanOrEqual(6);
    expect(b.ticks).toBeGreaterThan(a.ticks);
    expect(b.longestGap).toBeLessThan(a.longestGap);
  });

  it('reports models that cannot load', async () => {
    await expect(OnnxWorkerSession.create(new Uint8Array([8, 1, 2, 3]))).rejects.toThrow(/could not load/);
    await expect(OnnxWorkerSession.create('/nonexistent/model.onnx')).rejects.toThrow(/cannot be read/);
  });
});
