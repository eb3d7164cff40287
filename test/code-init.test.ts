// Code-token embeddings started from the tokenizers' codebooks (lib/llm/code-init.ts).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { embedCodebooks } from '../lib/llm/code-init.js';
import { DEFAULT_LLM_STAGE, embedTokenizerCodebooks, llmInputs } from '../lib/llm/stage.js';
import { LLM4Rec } from '../lib/llm/model.js';
import { t5Config } from '../lib/t5/config.js';
import { readSafetensors } from '../lib/io/safetensors.js';
import { requireManifest } from '../lib/io/manifest.js';
import { syntheticDataset } from '../lib/data/synthetic.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { TOKENIZER_FILES } from '../lib/tokenizer/stage.js';
import { rng, randomVectors } from './helpers/random.js';
import { tempDir } from './helpers/tmp.js';
import { buildServeModel } from './helpers/serve-model.js';

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, x, k) => s + x * b[k], 0);

/** Pearson correlation of two lists. */
function corr(x: number[], y: number[]): number {
  const mx = x.reduce((s, v) => s + v, 0) / x.length, my = y.reduce((s, v) => s + v, 0) / y.length;
  let sxy = 0, sxx = 0, syy = 0;
  x.forEach((v, i) => ((sxy += (v - mx) * (y[i] - my)), (sxx += (v - mx) ** 2), (syy += (y[i] - my) ** 2)));
  return sxy / Math.sqrt(sxx * syy);
}

describe('embedCodebooks', () => {
  const K = 2, L = 6, dc = 4, dModel = 64, V = 20, base = 5;
  const r = rng(3);
  const codebooks = randomVectors(r, K * L, dc);
  const fresh = () => randomVectors(rng(8), V, dModel);

  it('keeps the codewords\' inner products (up to scale), the old rows\' RMS, and every other row', () => {
    const before = fresh();
    const emb = before.slice();
    embedCodebooks(emb, dModel, base, codebooks, K, L, dc, 11);
    const row = (m: Float32Array, i: number, w: number) => m.subarray(i * w, (i + 1) * w);
    const a: number[] = [], b: number[] = [];
    for (let i = 0; i < K * L; i++) for (let j = i; j < K * L; j++) {
      a.push(dot(row(codebooks, i, dc), row(codebooks, j, dc)));
      b.push(dot(row(emb, base + i, dModel), row(emb, base + j, dModel)));
    }
    expect(corr(a, b)).toBeGreaterThan(0.9); // a 64-dimensional Gaussian projection of 4-dimensional codewords
    const rms = (m: Float32Array) => Math.sqrt(m.reduce((s, x) => s + x * x, 0) / m.length);
    const span = (m: Float32Array) => m.subarray(base * dModel, (base + K * L) * dModel);
    expect(rms(span(emb))).toBeCloseTo(rms(span(before)), 5);
    expect(Array.from(emb.subarray(0, base * dModel))).toEqual(Array.from(before.subarray(0, base * dModel)));
    expect(Array.from(emb.subarray((base + K * L) * dModel))).toEqual(Array.from(before.subarray((base + K * L) * dModel)));
    // Seeded: the same seed gives the same rows.
    const again = before.slice();
    embedCodebooks(again, dModel, base, codebooks, K, L, dc, 11);
    expect(Array.from(again)).toEqual(Array.from(emb));
  });

  it('names bad input', () => {
    expect(() => embedCodebooks(fresh(), dModel, base, codebooks.subarray(1), K, L, dc, 1)).toThrow(/not \(K = 2\) \* \(L = 6\) \* \(dc = 4\)/);
    expect(() => embedCodebooks(fresh(), dModel, 15, codebooks, K, L, dc, 1)).toThrow(/outside the 20-row embedding table/);
    const nan = codebooks.slice();
    nan[3] = NaN;
    expect(() => embedCodebooks(fresh(), dModel, base, nan, K, L, dc, 1)).toThrow(/non-finite/);
  });
});

describe('--code-embeddings codebooks', () => {
  const tmp = tempDir('tokenrec-codeinit-');

  it('trains, records the choice, and starts the item tokens at the item codebooks', async () => {
    const dir = buildServeModel(tmp.dir, 'cb', ['--code-embeddings', 'codebooks']);
    const cfg = requireManifest(dir).stages.llm.config as { codeEmbeddings?: string };
    expect(cfg.codeEmbeddings).toBe('codebooks');
    // The same initialisation on a fresh model of this directory: item token rows follow the codewords.
    const split = splitLeaveOneOut(syntheticDataset({ users: 150, items: 100, seed: 3 }), { unseenFraction: 0.1, seed: 0 });
    const { vocab, data } = llmInputs(dir, split, DEFAULT_LLM_STAGE);
    const model = LLM4Rec.create({ t5: t5Config('t5-tiny', vocab.size), queries: 2, projHidden: [8], itemDim: data.itemDim }, vocab, 0);
    try {
      embedTokenizerCodebooks(model, dir, 0);
      const emb = model.t5.getTensors()['shared.weight'];
      const d = model.shape.t5.dModel;
      const cb = readSafetensors(join(dir, TOKENIZER_FILES.item)).tensors.codebooks;
      const [, L, dc] = cb.shape;
      const a: number[] = [], b: number[] = [];
      for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) {
        a.push(dot((cb.data as Float32Array).subarray(i * dc, (i + 1) * dc), (cb.data as Float32Array).subarray(j * dc, (j + 1) * dc)));
        b.push(dot(emb.subarray((vocab.itemBase + i) * d, (vocab.itemBase + i + 1) * d), emb.subarray((vocab.itemBase + j) * d, (vocab.itemBase + j + 1) * d)));
      }
      expect(corr(a, b)).toBeGreaterThan(0.5); // t5-tiny: a 32-dimensional projection
      // item-codebooks: the item rows as above, the user rows as they were.
      const other = LLM4Rec.create(model.shape, vocab, 0);
      const before = other.t5.getTensors()['shared.weight'];
      embedTokenizerCodebooks(other, dir, 0, ['item']);
      const after = other.t5.getTensors()['shared.weight'];
      other.dispose();
      const users = (m: Float32Array) => Array.from(m.subarray(vocab.userBase * d, vocab.itemBase * d));
      const items = (m: Float32Array) => Array.from(m.subarray(vocab.itemBase * d, (vocab.itemBase + L) * d));
      expect(users(after)).toEqual(users(before));
      expect(users(emb)).not.toEqual(users(before));
      expect(items(after)).toEqual(items(emb));
    } finally {
      model.dispose();
    }
  }, 120_000);
});
