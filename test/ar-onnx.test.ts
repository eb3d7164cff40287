// The AR baseline on ONNX Runtime (lib/ar/onnx-export.ts, lib/ar/onnx-beam.ts) against the
// native model (lib/ar/model.ts: full decoder forward, encoder re-run at every step).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARRec } from '../lib/ar/model.js';
import { CodeTrie } from '../lib/ar/trie.js';
import { AR_ONNX_IO as IO } from '../lib/ar/onnx-export.js';
import { OnnxARBeam } from '../lib/ar/onnx-beam.js';
import { OnnxSession, type OnnxTensor } from '../lib/onnx/session.js';
import { Vocabulary } from '../lib/llm/vocab.js';
import { padPrompts, type PromptInputs } from '../lib/llm/model.js';
import { t5Config } from '../lib/t5/config.js';
import { rng } from './helpers/random.js';

const K = 3, L = 16, ITEMS = 60;
const vocab = new Vocabulary({ userK: 3, userL: 8, itemK: K, itemL: L, decoderQueries: 2 });
const config = t5Config('t5-tiny', vocab.size, { numDecoderLayers: 2, dropoutRate: 0 });
const rand = rng(3);
// Few items over a 16^3 space: most prefixes are invalid, so constraints matter.
const codes = Int32Array.from({ length: ITEMS * K }, () => Math.floor(rand() * L));
const itemCodes = { K, L, codes };

function prompts(B: number, seed: number): PromptInputs {
  const r = rng(seed);
  const ps = Array.from({ length: B }, (_, b) => Array.from({ length: 5 + ((b * 7) % 9) }, () => 3 + Math.floor(r() * (vocab.size - 3))));
  return padPrompts(ps.map((p) => [...p, vocab.eos]));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('AR baseline on ONNX Runtime', () => {
  let model: ARRec;
  let graphs: { encoder: Uint8Array; step: Uint8Array };
  beforeAll(() => {
    model = ARRec.create(config, vocab, itemCodes, 7);
    // Non-zero head biases, so that a wrong head selection or bias layout shows.
    model.heads.forEach((h, k) => h.biases[0].forEach((_, c) => (h.biases[0][c] = 0.3 * Math.sin(c + 5 * k))));
    graphs = model.exportOnnx();
  });
  afterAll(() => model.dispose());

  it('decoder step with the KV cache == native full-decoder forward at every step (log-probs within 1e-4), with cache reordering', async () => {
    const B = 3, W = 2, N = B * W;
    const p = prompts(B, 11);
    const enc = await OnnxSession.create(graphs.encoder, { intraOpNumThreads: 1, allowSpinning: false });
    const step = await OnnxSession.create(graphs.step, { intraOpNumThreads: 1, allowSpinning: false });
    try {
      const mask: OnnxTensor = { data: BigInt64Array.from(p.mask, BigInt), dims: [B, p.length] };
      const e = await enc.run({ [IO.inputIds]: { data: BigInt64Array.from(p.ids, BigInt), dims: [B, p.length] }, [IO.attentionMask]: mask });
      const cross: Record<string, OnnxTensor> = {};
      for (let i = 0; i < config.numDecoderLayers; i++) for (const n of [IO.crossKey(i), IO.crossValue(i)]) cross[n] = e[n];
      const r = rng(17);
      let prefixes: number[][] = Array.from({ length: N }, () => []);
      let past: Record<string, OnnxTensor> = {};
      for (let i = 0; i < config.numDecoderLayers; i++) for (const n of [IO.pastKey(i), IO.pastValue(i)]) past[n] = { data: new Float32Array(0), dims: [N, config.numHeads, 0, config.dKv] };
      const query = Int32Array.from({ length: N }, (_, row) => Math.floor(row / W));
      for (let t = 0; t < K; t++) {
        // Parents: identity at step 0; then each user's rows continue a shuffled / duplicated row of that user.
        const parent = Array.from({ length: N }, (_, row) => (t === 0 ? row : Math.floor(row / W) * W + (t === 1 ? (row + 1) % W : 0)));
        const prev = prefixes;
        prefixes = parent.map((pr) => [...prev[pr]]);
        const ids = BigInt64Array.from(parent, (pr, row) => BigInt(t === 0 ? vocab.pad : vocab.itemBase + (t - 1) * L + prefixes[row][t - 1]));
        const out = await step.run({ [IO.inputIds]: { data: ids, dims: [N, 1] }, [IO.beamIdx]: { data: BigInt64Array.from(parent, BigInt), dims: [N] }, [IO.attentionMask]: mask, ...cross, ...past });
        const onnx = out[IO.logProbs].data as Float32Array;
        const native = await model.stepLogProbs(p, query, prefixes, t);
        expect(maxAbsDiff(onnx, native), `step ${t}`).toBeLessThan(1e-4);
        past = {};
        for (let i = 0; i < config.numDecoderLayers; i++) {
          past[IO.pastKey(i)] = out[IO.presentKey(i)];
          past[IO.pastValue(i)] = out[IO.presentValue(i)];
          expect(out[IO.presentKey(i)].dims).toEqual([N, config.numHeads, t + 1, config.dKv]);
        }
        // Next step's inputs: a random code per row.
        prefixes.forEach((pf) => pf.push(Math.floor(r() * L)));
      }
    } finally {
      await enc.dispose();
      await step.dispose();
    }
  });

  it('ONNX beam search returns the same items (and scores) as the native beam search; never an invalid item', async () => {
    const p = prompts(4, 23);
    const beam = await OnnxARBeam.create(graphs.encoder, graphs.step, config, model.trie, { start: vocab.pad, itemBase: vocab.itemBase }, { intraOpNumThreads: 1, allowSpinning: false });
    try {
      for (const width of [1, 4, 20]) {
        const o = await beam.search(p, { beam: width, k: 10 });
        const n = await model.recommend(p, { beam: width, k: 10 });
        expect(o.map((r) => r.items), `beam ${width}`).toEqual(n.map((r) => r.items));
        o.forEach((r, q) => r.scores.forEach((s, j) => expect(Math.abs(s - n[q].scores[j])).toBeLessThan(1e-4)));
        for (const r of o) {
          expect(new Set(r.items).size).toBe(r.items.length);
          for (const i of r.items) {
            expect(Number.isInteger(i) && i >= 0 && i < ITEMS).toBe(true);
          }
        }
      }
    } finally {
      await beam.dispose();
    }
  });

  it('width 1 equals greedy decoding over the valid codes; codes of returned items are valid tuples', async () => {
    const p = prompts(3, 31);
    const beam = await OnnxARBeam.create(graphs.encoder, graphs.step, config, model.trie, { start: vocab.pad, itemBase: vocab.itemBase }, { intraOpNumThreads: 1, allowSpinning: false });
    try {
      const timings = { encoder: 0, steps: [] as number[], bookkeeping: 0, total: 0 };
      const res = await beam.search(p, { beam: 1, k: 1 }, timings);
      expect(timings.steps.length).toBe(K);
      const trie = new CodeTrie(codes, K, L);
      for (let q = 0; q < p.batch; q++) {
        const one: PromptInputs = { ids: p.ids.subarray(q * p.length, (q + 1) * p.length), mask: p.mask.subarray(q * p.length, (q + 1) * p.length), batch: 1, length: p.length };
        const prefix: number[] = [];
        let node = 0;
        for (let t = 0; t < K; t++) {
          const lp = await model.stepLogProbs(one, Int32Array.of(0), [prefix], t);
          let best = -1, bestLp = -Infinity, bestNode = -1;
          for (const [c, child] of trie.next(node)) if (lp[c] > bestLp) [best, bestLp, bestNode] = [c, lp[c], child];
          prefix.push(best);
          node = bestNode;
        }
        expect(res[q].items[0]).toBe(trie.items(node)[0]);
        expect(Array.from(codes.subarray(res[q].items[0] * K, res[q].items[0] * K + K))).toEqual(prefix);
      }
    } finally {
      await beam.dispose();
    }
  });

  it('rejects bad arguments with clear errors', async () => {
    const beam = await OnnxARBeam.create(graphs.encoder, graphs.step, config, model.trie, { start: vocab.pad, itemBase: vocab.itemBase }, { intraOpNumThreads: 1 });
    try {
      const p = prompts(2, 5);
      await expect(beam.search(p, { beam: 0, k: 1 })).rejects.toThrow(/beam width/);
      await expect(beam.search(p, { beam: 2, k: 0 })).rejects.toThrow(/k must/);
      await expect(beam.search({ ...p, batch: 3 }, { beam: 2, k: 1 })).rejects.toThrow(/batch \* length/);
      await expect(beam.search({ ...p, ids: p.ids.map((v, i) => (i === 1 ? vocab.size : v)) }, { beam: 2, k: 1 })).rejects.toThrow(/ids\[1\] = \d+ is outside the vocabulary/);
    } finally {
      await beam.dispose();
    }
  });
});
