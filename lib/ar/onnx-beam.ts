// Constrained beam search of the AR baseline on ONNX Runtime with a KV cache
// (graphs: lib/ar/onnx-export.ts). Per batch of users: the encoder runs once (it also yields the
// cross-attention keys/values of every decoder layer); then K decoder steps, each feeding one
// token per beam and the previous step's self-attention cache, reordered in the graph by
// beam_idx (the parent row of each surviving beam).
//
// Same search as lib/ar/beam.ts (the native reference): at step t each live beam expands only
// the codes that continue a valid prefix (CodeTrie), scores are summed log-probabilities, the best
// `beam` candidates per user survive (ties: smaller code tuple first), and the final items are
// ranked by score (ties: smaller item id). Rows are padded per user to a common width W with dead
// beams (score -Infinity, copying a live row's cache) because the graph groups rows by user.
import { OnnxSession, type OnnxRunner, type OnnxSessionOptions, type OnnxTensor } from '../onnx/session.js';
import type { T5Config } from '../t5/config.js';
import type { PromptInputs } from '../llm/model.js';
import type { CodeTrie } from './trie.js';
import type { BeamResult } from './beam.js';
import { AR_ONNX_IO as IO } from './onnx-export.js';

/** Where the time of one search went (ms). */
export interface BeamTimings {
  encoder: number;
  /** One entry per decoder step (ONNX Runtime run incl. feeding the cache). */
  steps: number[];
  /** Candidate expansion, sorting, building the next step's inputs and the final ranking (JS). */
  bookkeeping: number;
  total: number;
}

export interface ARTokens {
  /** Decoder start token (T5: pad). */
  start: number;
  /** Token id of code c at position k: itemBase + k * L + c. */
  itemBase: number;
}

interface LiveBeam {
  codes: number[];
  node: number;
  score: number;
  /** Row of the previous step's cache this beam continues. */
  parent: number;
}

export class OnnxARBeam {
  private constructor(
    readonly encoder: OnnxRunner,
    readonly step: OnnxRunner,
    readonly config: T5Config,
    readonly trie: CodeTrie,
    readonly tokens: ARTokens,
  ) {}

  static async create(encoder: Uint8Array | string, step: Uint8Array | string, config: T5Config, trie: CodeTrie, tokens: ARTokens, opts: OnnxSessionOptions = {}): Promise<OnnxARBeam> {
    const e = await OnnxSession.create(encoder, opts);
    try {
      const s = await OnnxSession.create(step, opts);
      return new OnnxARBeam(e, s, config, trie, tokens);
    } catch (err) {
      await e.dispose();
      throw err;
    }
  }

  /** Top-k items per prompt; `timings` (when given) receives the breakdown. */
  async search(p: PromptInputs, o: { beam: number; k: number }, timings?: BeamTimings): Promise<BeamResult[]> {
    const { beam, k } = o;
    if (!Number.isInteger(beam) || beam < 1) throw new RangeError(`beam width must be a positive integer, got ${beam}`);
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
    const B = p.batch, S = p.length;
    if (!(Number.isInteger(B) && B >= 1 && Number.isInteger(S) && S >= 1)) throw new RangeError(`prompts: batch and length must be positive integers, got ${B}, ${S}`);
    if (p.ids.length !== B * S || p.mask.length !== B * S) throw new RangeError(`prompts: ids and mask must hold batch * length = ${B * S} values`);
    const V = this.config.vocabSize;
    for (let i = 0; i < p.ids.length; i++) {
      if (!(p.ids[i] >= 0 && p.ids[i] < V)) throw new RangeError(`prompts: ids[${i}] = ${p.ids[i]} is outside the vocabulary [0, ${V})`);
      if (p.mask[i] !== 0 && p.mask[i] !== 1) throw new RangeError(`prompts: mask[${i}] = ${p.mask[i]}: the mask holds 1 (token) or 0 (padding)`);
    }
    const { trie } = this;
    const { numDecoderLayers: layers, numHeads: H, dKv } = this.config;
    const L = trie.L, K = trie.K;
    const tm: BeamTimings = timings ?? { encoder: 0, steps: [], bookkeeping: 0, total: 0 };
    tm.encoder = 0;
    tm.steps = [];
    tm.bookkeeping = 0;
    const t0 = performance.now();

    const mask: OnnxTensor = { data: BigInt64Array.from(p.mask, (v) => BigInt(v)), dims: [B, S] };
    const enc = await this.encoder.run({ [IO.inputIds]: { data: BigInt64Array.from(p.ids, (v) => BigInt(v)), dims: [B, S] }, [IO.attentionMask]: mask }, Array.from({ length: layers }, (_, i) => [IO.crossKey(i), IO.crossValue(i)]).flat());
    const t1 = performance.now();
    tm.encoder = t1 - t0;
    const crossFeeds: Record<string, OnnxTensor> = {};
    for (let i = 0; i < layers; i++) {
      crossFeeds[IO.crossKey(i)] = enc[IO.crossKey(i)];
      crossFeeds[IO.crossValue(i)] = enc[IO.crossValue(i)];
    }

    // beams[u]: exactly W rows per user (dead rows have score -Infinity).
    let W = 1;
    let beams: LiveBeam[][] = Array.from({ length: B }, (_, u) => [{ codes: [], node: 0, score: 0, parent: u }]);
    let past: Record<string, OnnxTensor> = {};
    for (let i = 0; i < layers; i++) {
      past[IO.pastKey(i)] = { data: new Float32Array(0), dims: [B, H, 0, dKv] };
      past[IO.pastValue(i)] = { data: new Float32Array(0), dims: [B, H, 0, dKv] };
    }
    for (let t = 0; t < K; t++) {
      const tb = performance.now();
      const N = B * W;
      const ids = new BigInt64Array(N);
      const beamIdx = new BigInt64Array(N);
      beams.forEach((bs, u) =>
        bs.forEach((b, j) => {
          const r = u * W + j;
          ids[r] = BigInt(t === 0 ? this.tokens.start : this.tokens.itemBase + (t - 1) * L + b.codes[t - 1]);
          beamIdx[r] = BigInt(b.parent);
        }),
      );
      const ts = performance.now();
      tm.bookkeeping += ts - tb;
      const fetches: string[] = [IO.logProbs];
      if (t + 1 < K) for (let i = 0; i < layers; i++) fetches.push(IO.presentKey(i), IO.presentValue(i));
      const out = await this.step.run({ [IO.inputIds]: { data: ids, dims: [N, 1] }, [IO.beamIdx]: { data: beamIdx, dims: [N] }, [IO.attentionMask]: mask, ...crossFeeds, ...past }, fetches);
      const te = performance.now();
      tm.steps.push(te - ts);
      const logp = out[IO.logProbs].data as Float32Array;
      // Expand and prune per user: candidates as flat arrays, objects only for the survivors.
      const next: LiveBeam[][] = beams.map((bs, u) => {
        const cRow: number[] = [], cBeam: number[] = [], cCode: number[] = [], cChild: number[] = [], cScore: number[] = [];
        bs.forEach((b, j) => {
          if (b.score === -Infinity) return;
          const r = u * W + j;
          for (const [c, child] of trie.next(b.node)) {
            cRow.push(r);
            cBeam.push(j);
            cCode.push(c);
            cChild.push(child);
            cScore.push(b.score + logp[r * L + c]);
          }
        });
        const order = Array.from(cScore.keys());
        // Score descending; ties by the code tuple (the parent's codes, then the new code).
        order.sort((x, y) => cScore[y] - cScore[x] || compareCodes(bs[cBeam[x]].codes, bs[cBeam[y]].codes) || cCode[x] - cCode[y]);
        return order.slice(0, beam).map((i) => ({ codes: [...bs[cBeam[i]].codes, cCode[i]], node: cChild[i], score: cScore[i], parent: cRow[i] }));
      });
      beams = next;
      if (t + 1 < K) {
        W = Math.max(1, ...beams.map((bs) => bs.length));
        beams = beams.map((bs, u) => {
          // A user with no valid continuation keeps dead rows pointing at its own first row.
          const filler = bs[0]?.parent ?? u * (N / B);
          while (bs.length < W) bs.push({ codes: Array(t + 1).fill(0), node: 0, score: -Infinity, parent: filler });
          return bs;
        });
        past = {};
        for (let i = 0; i < layers; i++) {
          past[IO.pastKey(i)] = out[IO.presentKey(i)];
          past[IO.pastValue(i)] = out[IO.presentValue(i)];
        }
      }
      tm.bookkeeping += performance.now() - te;
    }
    const tf = performance.now();
    const results = beams.map((bs) => {
      const ranked: [number, number][] = [];
      for (const b of bs) if (b.score !== -Infinity) for (const i of trie.items(b.node)) ranked.push([i, b.score]);
      ranked.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      const top = ranked.slice(0, k);
      return { items: top.map((r) => r[0]), scores: top.map((r) => r[1]) };
    });
    const tEnd = performance.now();
    tm.bookkeeping += tEnd - tf;
    tm.total = tEnd - t0;
    return results;
  }

  async dispose(): Promise<void> {
    await this.encoder.dispose();
    await this.step.dispose();
  }
}

function compareCodes(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
