// The autoregressive generative baseline (P5/TIGER style) on TokenRec's backbone and item codes:
// the encoder reads the same prompt as LLM4Rec; the decoder generates the target item's K codes
// one at a time, starting from the decoder start token (T5's: pad), through one linear head per
// code position over that position's L codes. Trained with teacher-forced cross-entropy;
// inference is constrained beam search (lib/ar/beam.ts) over the prefix tree of valid tuples.
import { T5Model } from '../t5/model.js';
import type { T5Config } from '../t5/config.js';
import { Mlp } from '../nn/mlp.js';
import type { PromptInputs, Codes } from '../llm/model.js';
import type { Vocabulary } from '../llm/vocab.js';
import { CodeTrie } from './trie.js';
import { beamSearch, type BeamResult } from './beam.js';
import { exportARDecoderStepOnnx, exportAREncoderOnnx, type ARHeads } from './onnx-export.js';

export class ARRec {
  readonly t5: T5Model;
  /** heads[k]: dModel -> L logits for code position k. */
  readonly heads: Mlp[];
  readonly vocab: Vocabulary;
  readonly itemCodes: Codes;
  readonly trie: CodeTrie;

  constructor(t5: T5Model, heads: Mlp[], vocab: Vocabulary, itemCodes: Codes) {
    if (heads.length !== itemCodes.K) throw new Error(`need one head per code position (${itemCodes.K}), got ${heads.length}`);
    this.t5 = t5;
    this.heads = heads;
    this.vocab = vocab;
    this.itemCodes = itemCodes;
    this.trie = new CodeTrie(itemCodes.codes, itemCodes.K, itemCodes.L);
  }

  static create(t5Config: T5Config, vocab: Vocabulary, itemCodes: Codes, seed: number): ARRec {
    const t5 = T5Model.create(t5Config, seed);
    const heads = Array.from({ length: itemCodes.K }, (_, k) => new Mlp([t5Config.dModel, itemCodes.L], seed + 11 + k));
    return new ARRec(t5, heads, vocab, itemCodes);
  }

  get K(): number {
    return this.itemCodes.K;
  }
  get L(): number {
    return this.itemCodes.L;
  }

  /** Decoder input for prefixes: [start, code tokens of the prefix...], all of one length T. */
  private decoderInputs(prefixes: number[][]): Int32Array {
    const T = prefixes[0].length + 1;
    const ids = new Int32Array(prefixes.length * T);
    prefixes.forEach((p, b) => {
      if (p.length !== T - 1) throw new RangeError('decoder prefixes of one call must have one length');
      ids[b * T] = this.vocab.pad; // T5's decoder start token
      p.forEach((c, k) => (ids[b * T + 1 + k] = this.vocab.itemBase + k * this.L + c));
    });
    return ids;
  }

  /** Teacher-forced cross-entropy step on (prompt, target item). Returns the mean loss per code. */
  async trainStep(p: PromptInputs, targets: number[], o: { lr: number; weightDecay?: number; clipNorm?: number }): Promise<number> {
    const B = p.batch, K = this.K, L = this.L, d = this.t5.config.dModel;
    const tuples = targets.map((t) => Array.from(this.itemCodes.codes.subarray(t * K, t * K + K)));
    await this.t5.zeroGrad();
    for (const h of this.heads) h.zeroGrad();
    // Decoder reads [start, c1 .. c_{K-1}] and predicts [c1 .. cK].
    const dec = this.decoderInputs(tuples.map((c) => c.slice(0, K - 1)));
    const H = await this.t5.forward({ inputIds: p.ids, attentionMask: p.mask, decoderInputIds: dec, batchSize: B, train: true });
    const dH = new Float32Array(H.length);
    let loss = 0;
    for (let k = 0; k < K; k++) {
      const hk = new Float32Array(B * d);
      for (let b = 0; b < B; b++) hk.set(H.subarray((b * K + k) * d, (b * K + k + 1) * d), b * d);
      const logits = this.heads[k].forward(hk, B, true);
      const g = new Float32Array(B * L);
      for (let b = 0; b < B; b++) {
        let m = -Infinity;
        for (let c = 0; c < L; c++) m = Math.max(m, logits[b * L + c]);
        let z = 0;
        for (let c = 0; c < L; c++) z += Math.exp(logits[b * L + c] - m);
        const lz = Math.log(z) + m;
        const y = tuples[b][k];
        loss += lz - logits[b * L + y];
        for (let c = 0; c < L; c++) g[b * L + c] = (Math.exp(logits[b * L + c] - lz) - (c === y ? 1 : 0)) / (B * K);
      }
      const gh = this.heads[k].backward(g);
      for (let b = 0; b < B; b++) dH.set(gh.subarray(b * d, (b + 1) * d), (b * K + k) * d);
    }
    await this.t5.backward(dH);
    await this.t5.step({ lr: o.lr, weightDecay: o.weightDecay ?? 0, clipNorm: o.clipNorm ?? 0 });
    for (const h of this.heads) h.step({ lr: o.lr, weightDecay: o.weightDecay ?? 0 });
    return loss / (B * K);
  }

  /** Log-probabilities over the L codes of position `step` for each (query prompt, prefix). */
  async stepLogProbs(p: PromptInputs, query: Int32Array, prefixes: number[][], step: number): Promise<Float32Array> {
    const S = p.length, n = prefixes.length, L = this.L, d = this.t5.config.dModel;
    const ids = new Int32Array(n * S);
    const mask = new Int32Array(n * S);
    for (let b = 0; b < n; b++) {
      ids.set(p.ids.subarray(query[b] * S, (query[b] + 1) * S), b * S);
      mask.set(p.mask.subarray(query[b] * S, (query[b] + 1) * S), b * S);
    }
    const T = step + 1;
    const H = await this.t5.forward({ inputIds: ids, attentionMask: mask, decoderInputIds: this.decoderInputs(prefixes), batchSize: n, train: false });
    const last = new Float32Array(n * d);
    for (let b = 0; b < n; b++) last.set(H.subarray((b * T + step) * d, (b * T + step + 1) * d), b * d);
    const logits = this.heads[step].forward(last, n);
    for (let b = 0; b < n; b++) {
      let m = -Infinity;
      for (let c = 0; c < L; c++) m = Math.max(m, logits[b * L + c]);
      let z = 0;
      for (let c = 0; c < L; c++) z += Math.exp(logits[b * L + c] - m);
      const lz = Math.log(z) + m;
      for (let c = 0; c < L; c++) logits[b * L + c] -= lz;
    }
    return logits;
  }

  /** Top-k items per prompt by constrained beam search (native forward; the encoder is re-run per step). */
  async recommend(p: PromptInputs, o: { beam: number; k: number }): Promise<BeamResult[]> {
    return beamSearch(p.batch, this.trie, (query, prefixes, step) => this.stepLogProbs(p, query, prefixes, step), o);
  }

  /** The heads in the export's layout (weight (L, d), bias (L) per position). */
  onnxHeads(): ARHeads {
    for (const h of this.heads) if (h.layers !== 1) throw new Error(`AR heads must be single linear layers, got sizes [${h.sizes}]`);
    return { K: this.K, L: this.L, weights: this.heads.map((h) => h.weights[0]), biases: this.heads.map((h) => h.biases[0]) };
  }

  /** ONNX graphs for cached beam search (lib/ar/onnx-export.ts): the encoder and the decoder step. */
  exportOnnx(): { encoder: Uint8Array; step: Uint8Array } {
    const tensors = this.t5.getTensors();
    return { encoder: exportAREncoderOnnx(this.t5.config, tensors), step: exportARDecoderStepOnnx(this.t5.config, tensors, this.onnxHeads()) };
  }

  dispose(): void {
    this.t5.dispose();
  }
}
