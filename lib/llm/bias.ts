// Cosine plus a learned per-item bias (beyond the paper; issue 6 item 8). Cosine scoring throws
// away the item-vector norms, which carry popularity in LightGCN; dot scoring keeps them but lets
// |v_i| scale the preference part too. Here the language model keeps the paper's cosine for
// preference, and each item gets one learned number b_i for everything the prompt does not
// explain (popularity above all):
//
//   score(z, i) = cos(z, v_i) / temperature + b_i
//
// trained jointly with the backbone by the full softmax ('softmax-cosine-bias', lib/llm/loss.ts).
// For retrieval the score is one inner product in d + 1 dimensions, so every exact top-K engine
// (the native kernel, faiss) serves it unchanged:
//
//   item row  [v_i / (|v_i| temperature), b_i]      query row  [z / |z|, 1]
import { unitRowsInPlace } from './loss.js';

/** The learned per-item bias and its Adam state (no weight decay: the bias is a prior, not a weight). */
export class ItemBias {
  /** (numItems) */
  readonly values: Float32Array;
  /** Adam's first and second moments (numItems each) and its step count. */
  readonly m: Float32Array;
  readonly v: Float32Array;
  steps = 0;

  constructor(numItems: number, values?: Float32Array) {
    if (!Number.isInteger(numItems) || numItems <= 0) throw new RangeError(`item bias: numItems must be a positive integer, got ${numItems}`);
    if (values && values.length !== numItems) throw new RangeError(`item bias: ${values.length} values for ${numItems} items`);
    this.values = values ? values.slice() : new Float32Array(numItems);
    this.m = new Float32Array(numItems);
    this.v = new Float32Array(numItems);
  }

  get numItems(): number {
    return this.values.length;
  }

  /** One Adam step on grad (numItems). */
  step(grad: Float32Array, lr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    if (grad.length !== this.values.length) throw new RangeError(`item bias: gradient of ${grad.length} for ${this.values.length} items`);
    this.steps++;
    const c1 = 1 - beta1 ** this.steps, c2 = 1 - beta2 ** this.steps;
    for (let i = 0; i < grad.length; i++) {
      const g = grad[i];
      this.m[i] = beta1 * this.m[i] + (1 - beta1) * g;
      this.v[i] = beta2 * this.v[i] + (1 - beta2) * g * g;
      this.values[i] -= (lr * (this.m[i] / c1)) / (Math.sqrt(this.v[i] / c2) + eps);
    }
  }

  /** Restores the Adam state (moments of numItems each, finite, v >= 0), checked before anything changes. */
  setState(m: Float32Array, v: Float32Array, steps: number, source: string): void {
    if (m.length !== this.numItems || v.length !== this.numItems) throw new Error(`${source}: item-bias moments of ${m.length}/${v.length} for ${this.numItems} items`);
    if (!Number.isSafeInteger(steps) || steps < 0) throw new Error(`${source}: item-bias step count must be a non-negative integer, got ${steps}`);
    for (let i = 0; i < v.length; i++) if (!(v[i] >= 0) || !Number.isFinite(m[i])) throw new Error(`${source}: item-bias moments are not finite / non-negative at item ${i}`);
    this.m.set(m);
    this.v.set(v);
    this.steps = steps;
  }
}

/**
 * The bias a model starts from: the log of each item's training count (+1), centred. With no
 * information from the prompt, these are the logits a softmax over items would learn, so
 * training starts at the popularity prior and the bias moves only where the prompt does not
 * explain it. counts: (numItems) training interactions per item (trainingItemCounts).
 */
export function popularityPrior(counts: ArrayLike<number>): Float32Array {
  const out = Float32Array.from(counts, (c) => Math.log(c + 1));
  const mean = out.reduce((s, x) => s + x, 0) / out.length;
  return out.map((x) => x - mean);
}

/**
 * Item rows of the biased score as an inner product: (numItems * (d + 1)), row i =
 * [v_i / (|v_i| temperature), b_i] (a zero v_i keeps a zero vector part).
 */
export function biasedItemRows(itemVectors: Float32Array, d: number, bias: Float32Array, temperature: number): Float32Array {
  const n = itemVectors.length / d;
  if (!Number.isInteger(n) || bias.length !== n) throw new RangeError(`biased scoring: ${bias.length} biases for item vectors of ${itemVectors.length} = (numItems * ${d})`);
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`biased scoring: temperature must be a positive number, got ${temperature}`);
  const unit = itemVectors.slice();
  unitRowsInPlace(unit, d);
  const out = new Float32Array(n * (d + 1));
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < d; k++) out[i * (d + 1) + k] = unit[i * d + k] / temperature;
    out[i * (d + 1) + d] = bias[i];
  }
  return out;
}

/** Query rows of the biased score: (B * (d + 1)), row b = [z_b / |z_b|, 1] (a zero z_b scores by the bias alone). */
export function biasedQueryRows(z: Float32Array, d: number): Float32Array {
  const B = z.length / d;
  if (!Number.isInteger(B)) throw new RangeError(`biased scoring: z (${z.length}) must be (B * ${d})`);
  const unit = z.slice();
  unitRowsInPlace(unit, d);
  const out = new Float32Array(B * (d + 1));
  for (let b = 0; b < B; b++) {
    out.set(unit.subarray(b * d, (b + 1) * d), b * (d + 1));
    out[b * (d + 1) + d] = 1;
  }
  return out;
}
