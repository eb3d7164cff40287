// Code-token embeddings that start from the tokenizers' codebooks (beyond the paper; opt-in with
// `--code-embeddings codebooks`). The paper's out-of-vocabulary code tokens start random, so a
// language model trained from scratch must learn from co-occurrence alone that <v1-17> and
// <v1-42> name similar items. Codeword c of level k already sits where its items' vectors
// are (in the tokenizer's latent space), so its token's embedding starts at a seeded random
// projection of that codeword: nearby codewords get nearby embeddings (a Gaussian projection
// keeps inner products up to a common scale), scaled to the RMS of the rows it replaces so the
// backbone sees inputs of the size it was initialised for.
import { seededRandom } from '../data/split.js';

/**
 * 'random': the paper; 'codebooks': user and item code tokens start at their codewords;
 * 'item-codebooks': item tokens only. A user's codes stand for its CF vector, which was fitted to
 * its training items, so user tokens that start informative let the model recall training targets
 * it should predict from the prompt's items (on sparse data this overfits; docs/RESULTS.md).
 */
export const CODE_EMBEDDINGS = ['random', 'codebooks', 'item-codebooks'] as const;
export type CodeEmbeddings = (typeof CODE_EMBEDDINGS)[number];

/** A standard normal sample from a uniform stream (Box-Muller). */
function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/**
 * Overwrites the rows base + k * L + c (k < K, c < L) of `embeddings` ((vocab * dModel), the
 * backbone's token embeddings) with P codebooks[k][c], P a seeded (dModel, dc) Gaussian
 * projection, rescaled so that the new rows have the RMS the old ones had.
 * codebooks: (K * L * dc), laid out (K, L, dc).
 */
export function embedCodebooks(embeddings: Float32Array, dModel: number, base: number, codebooks: Float32Array, K: number, L: number, dc: number, seed: number): void {
  const rows = K * L;
  if (codebooks.length !== rows * dc) throw new RangeError(`code embeddings: codebooks of ${codebooks.length} values are not (K = ${K}) * (L = ${L}) * (dc = ${dc})`);
  if (!Number.isInteger(base) || base < 0 || (base + rows) * dModel > embeddings.length) throw new RangeError(`code embeddings: rows ${base}..${base + rows - 1} are outside the ${embeddings.length / dModel}-row embedding table`);
  for (const x of codebooks) if (!Number.isFinite(x)) throw new RangeError('code embeddings: the codebooks hold a non-finite value');
  const block = embeddings.subarray(base * dModel, (base + rows) * dModel);
  const rms = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  const target = rms(block);
  const rand = seededRandom(seed);
  const P = Float64Array.from({ length: dModel * dc }, () => normal(rand));
  const out = new Float32Array(block.length);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dModel; j++) {
      let s = 0;
      for (let t = 0; t < dc; t++) s += P[j * dc + t] * codebooks[r * dc + t];
      out[r * dModel + j] = s;
    }
  }
  const got = rms(out);
  // All-zero codebooks leave nothing to copy: keep the random rows.
  if (got > 0) block.set(out.map((x) => (x * target) / got));
}
