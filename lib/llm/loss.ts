// LLM4Rec's losses. Each returns the mean loss over the batch and d loss / d z.
// The paper's (PAPER.md §1.3): for a positive item 1 - cos(z, q); for a negative
// max(0, cos(z, q) - gamma). Beyond the paper: a full softmax over every item (ItemSoftmax).
import { sgemm } from '../nn/gemm.js';
import { nativeFunction } from '../native/addon.js';

type XentFn = (o: { logits: Float32Array; rows: number; cols: number; targets: Int32Array; gradScale: number }) => number;
let xent: XentFn | undefined;

export const LLM_LOSSES = ['margin', 'softmax-cosine', 'softmax-dot', 'softmax-cosine-bias'] as const;
export type LLMLoss = (typeof LLM_LOSSES)[number];

/**
 * z: (B, d) model outputs; pos, neg: (B, d) item vectors (neg may be empty: no negatives).
 * Zero vectors have cosine 0 and no gradient.
 */
export function cosineMarginLoss(z: Float32Array, pos: Float32Array, neg: Float32Array | undefined, d: number, gamma: number): { loss: number; grad: Float32Array } {
  const B = z.length / d;
  if (!Number.isInteger(B) || pos.length !== z.length || (neg && neg.length !== z.length)) {
    throw new RangeError(`loss: z (${z.length}), pos (${pos.length}) and neg (${neg?.length}) must all be (B * ${d})`);
  }
  const grad = new Float32Array(z.length);
  let loss = 0;
  // d cos(z, q) / dz = q / (|z||q|) - cos * z / |z|^2
  const addCos = (b: number, q: Float32Array, sign: number, margin: number | undefined) => {
    let zz = 0, qq = 0, zq = 0;
    for (let k = 0; k < d; k++) {
      const a = z[b * d + k], c = q[b * d + k];
      zz += a * a;
      qq += c * c;
      zq += a * c;
    }
    if (zz === 0 || qq === 0) return margin === undefined ? 1 : Math.max(0, -margin);
    const nz = Math.sqrt(zz), nq = Math.sqrt(qq);
    const cos = zq / (nz * nq);
    if (margin !== undefined && cos - margin <= 0) return 0;
    for (let k = 0; k < d; k++) grad[b * d + k] += (sign / B) * (q[b * d + k] / (nz * nq) - (cos * z[b * d + k]) / zz);
    return margin === undefined ? 1 - cos : cos - margin;
  };
  for (let b = 0; b < B; b++) {
    loss += addCos(b, pos, -1, undefined);
    if (neg) loss += addCos(b, neg, +1, gamma);
  }
  return { loss: B ? loss / B : 0, grad };
}

/** Divides each row of v ((n * d)) by its L2 norm in place (zero rows stay zero); returns the n norms. */
export function unitRowsInPlace(v: Float32Array, d: number): Float32Array {
  const norms = new Float32Array(v.length / d);
  for (let i = 0; i < norms.length; i++) {
    const row = v.subarray(i * d, (i + 1) * d);
    const n = Math.hypot(...row);
    norms[i] = n;
    if (n > 0) for (let k = 0; k < d; k++) row[k] /= n;
  }
  return norms;
}

/**
 * Full-softmax ranking loss (beyond the paper): the model output is scored against every item,
 * and the loss is the cross-entropy of the target among them, so training optimises the same
 * ranking that evaluation measures instead of one positive and one random negative per sample.
 * Scores are cos(z, v_i) / temperature ('cosine': the paper's scoring) or z · v_i ('dot': the
 * un-normalised item vectors keep their popularity; the scale is learned through |z|).
 */
export class ItemSoftmax {
  readonly similarity: 'cosine' | 'dot';
  readonly temperature: number;
  readonly numItems: number;
  readonly d: number;
  /** (numItems * d): unit rows for cosine (zero rows stay zero), the vectors as given for dot. */
  private readonly items: Float32Array;

  /** itemVectors: (numItems * d). */
  constructor(itemVectors: Float32Array, d: number, similarity: 'cosine' | 'dot', temperature = 1) {
    if (!Number.isInteger(d) || d <= 0 || itemVectors.length === 0 || itemVectors.length % d !== 0) {
      throw new RangeError(`softmax loss: item vectors (${itemVectors.length}) must be (numItems * ${d}) with numItems > 0`);
    }
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`softmax loss: temperature must be a positive number, got ${temperature}`);
    this.similarity = similarity;
    this.temperature = similarity === 'cosine' ? temperature : 1;
    this.numItems = itemVectors.length / d;
    this.d = d;
    this.items = itemVectors.slice();
    if (similarity === 'cosine') unitRowsInPlace(this.items, d);
  }

  /**
   * z: (B * d) model outputs; targets: B item ids; exclude(b): items left out of row b's softmax
   * (the user's other known items, which evaluation also leaves out of the ranking; the target
   * itself is never excluded); bias: (numItems) per-item scores added to every row's logits
   * ('softmax-cosine-bias': cos / temperature + b_i). Returns the mean cross-entropy, d loss / d z
   * (B * d) and, with a bias, d loss / d bias (numItems).
   */
  loss(z: Float32Array, targets: ArrayLike<number>, exclude?: (b: number) => Iterable<number>, bias?: Float32Array): { loss: number; grad: Float32Array; biasGrad?: Float32Array } {
    const { d, numItems: N } = this;
    const B = targets.length;
    if (z.length !== B * d) throw new RangeError(`softmax loss: z (${z.length}) must be (B * ${d}) for B = ${B} targets`);
    if (bias && bias.length !== N) throw new RangeError(`softmax loss: the item bias has ${bias.length} entries for ${N} items`);
    for (let b = 0; b < B; b++) {
      const t = targets[b];
      if (!Number.isInteger(t) || t < 0 || t >= N) throw new RangeError(`softmax loss: target ${t} of row ${b} is not an item id (0..${N - 1})`);
    }
    // q: the rows that meet the items: unit z for cosine (a zero z stays zero), z itself for dot.
    const q = z.slice();
    const norms = this.similarity === 'cosine' ? unitRowsInPlace(q, d) : undefined;
    // logits (B, N) = q items^T / temperature
    const logits = new Float32Array(B * N);
    sgemm(false, true, B, N, d, 1 / this.temperature, q, this.items, 0, logits);
    if (bias) for (let b = 0; b < B; b++) for (let i = 0; i < N; i++) logits[b * N + i] += bias[i];
    if (exclude) {
      for (let b = 0; b < B; b++) for (const i of exclude(b)) if (i !== targets[b] && i >= 0 && i < N) logits[b * N + i] = -Infinity;
    }
    // In place: logits -> d loss / d logits = (softmax - onehot) / B (native: tokenrec/loss.h).
    xent ??= nativeFunction<XentFn>('softmaxXent');
    const loss = xent({ logits, rows: B, cols: N, targets: Int32Array.from(targets), gradScale: 1 / B });
    // d loss / d b_i: the column sums of d loss / d logits (excluded entries are 0 there).
    let biasGrad: Float32Array | undefined;
    if (bias) {
      biasGrad = new Float32Array(N);
      for (let b = 0; b < B; b++) for (let i = 0; i < N; i++) biasGrad[i] += logits[b * N + i];
    }
    // d loss / d q (B, d) = dlogits items / temperature
    const gq = new Float32Array(B * d);
    sgemm(false, false, B, d, N, 1 / this.temperature, logits, this.items, 0, gq);
    if (norms) {
      // q = z / |z|: dq/dz projects out the radial part and divides by |z|.
      for (let b = 0; b < B; b++) {
        const g = gq.subarray(b * d, (b + 1) * d);
        if (norms[b] === 0) {
          g.fill(0);
          continue;
        }
        const u = q.subarray(b * d, (b + 1) * d);
        let gu = 0;
        for (let k = 0; k < d; k++) gu += g[k] * u[k];
        for (let k = 0; k < d; k++) g[k] = (g[k] - gu * u[k]) / norms[b];
      }
    }
    return { loss: loss / B, grad: gq, biasGrad };
  }
}
