// Constrained beam search over item code tuples, batched over queries (users).
//
// At step t every live beam asks the model for log-probabilities of the L codes of position t;
// only codes that continue a valid prefix (CodeTrie) are expanded, so every finished beam is an
// existing item. Scores are summed log-probabilities. With width 1 this is greedy decoding.
import type { CodeTrie } from './trie.js';

export interface Beam {
  /** Codes chosen so far. */
  codes: number[];
  node: number;
  score: number;
}

/**
 * Returns log-probabilities (rows = beams, L columns) for the next code of each beam.
 * query[b] says which query (user) beam b belongs to; prefixes[b] its codes so far.
 */
export type StepFn = (query: Int32Array, prefixes: number[][], step: number) => Promise<Float32Array>;

export interface BeamResult {
  /** Items in order of score (ties: smaller item id first), at most k. */
  items: number[];
  scores: number[];
}

export async function beamSearch(numQueries: number, trie: CodeTrie, step: StepFn, opts: { beam: number; k: number }): Promise<BeamResult[]> {
  const { beam, k } = opts;
  if (!Number.isInteger(beam) || beam < 1) throw new RangeError(`beam width must be a positive integer, got ${beam}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
  let beams: Beam[][] = Array.from({ length: numQueries }, () => [{ codes: [], node: 0, score: 0 }]);
  for (let t = 0; t < trie.K; t++) {
    const query: number[] = [];
    const prefixes: number[][] = [];
    beams.forEach((bs, q) => bs.forEach((b) => { query.push(q); prefixes.push(b.codes); }));
    if (prefixes.length === 0) break;
    const logp = await step(Int32Array.from(query), prefixes, t);
    if (logp.length !== prefixes.length * trie.L) throw new RangeError(`step ${t}: expected ${prefixes.length} x ${trie.L} log-probabilities, got ${logp.length}`);
    let row = 0;
    beams = beams.map((bs) => {
      const cand: Beam[] = [];
      for (const b of bs) {
        for (const [c, child] of trie.next(b.node)) cand.push({ codes: [...b.codes, c], node: child, score: b.score + logp[row * trie.L + c] });
        row++;
      }
      // Keep the best `beam` candidates; ties broken by codes for determinism.
      cand.sort((a, b) => b.score - a.score || compareCodes(a.codes, b.codes));
      return cand.slice(0, beam);
    });
  }
  return beams.map((bs) => {
    const items: number[] = [];
    const scores: number[] = [];
    const ranked: [number, number][] = [];
    for (const b of bs) for (const i of trie.items(b.node)) ranked.push([i, b.score]);
    ranked.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    for (const [i, s] of ranked.slice(0, k)) {
      items.push(i);
      scores.push(s);
    }
    return { items, scores };
  });
}

function compareCodes(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
