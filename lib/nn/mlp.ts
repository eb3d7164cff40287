// A small dense MLP trained from TypeScript (the LLM4Rec projection head): layers of
// y = x W^T + b with ReLU between layers (none after the last), products through the native
// sgemm, AdamW in place. Weights use PyTorch's layout and default init: W (out, in), b (out),
// U(-1/sqrt(in), 1/sqrt(in)).
import { sgemm } from './gemm.js';
import { seededRandom } from '../data/split.js';

export interface AdamWOptions {
  lr: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export class Mlp {
  readonly sizes: number[];
  readonly weights: Float32Array[];
  readonly biases: Float32Array[];
  readonly gradW: Float32Array[];
  readonly gradB: Float32Array[];
  private m: Float32Array[] = [];
  private v: Float32Array[] = [];
  private t = 0;
  /** Activations of the last forward(train) call: inputs of each layer, (B, sizes[l]). */
  private acts: Float32Array[] = [];
  private batch = 0;

  constructor(sizes: number[], seed = 0) {
    if (sizes.length < 2) throw new RangeError('an MLP needs at least an input and an output size');
    for (const s of sizes) if (!Number.isInteger(s) || s < 1) throw new RangeError(`MLP sizes must be positive integers, got [${sizes}]`);
    this.sizes = sizes;
    const rand = seededRandom(seed);
    this.weights = [];
    this.biases = [];
    for (let l = 0; l + 1 < sizes.length; l++) {
      const fanIn = sizes[l];
      const bound = 1 / Math.sqrt(fanIn);
      this.weights.push(Float32Array.from({ length: sizes[l + 1] * fanIn }, () => (rand() * 2 - 1) * bound));
      this.biases.push(Float32Array.from({ length: sizes[l + 1] }, () => (rand() * 2 - 1) * bound));
    }
    this.gradW = this.weights.map((w) => new Float32Array(w.length));
    this.gradB = this.biases.map((b) => new Float32Array(b.length));
  }

  get layers(): number {
    return this.weights.length;
  }

  /** x: (B, sizes[0]) -> (B, sizes[last]). With train, keeps the activations for backward(). */
  forward(x: Float32Array, B: number, train = false): Float32Array {
    if (x.length !== B * this.sizes[0]) throw new RangeError(`MLP input has ${x.length} values; expected B * ${this.sizes[0]} = ${B * this.sizes[0]}`);
    const acts = [x];
    let h = x;
    for (let l = 0; l < this.layers; l++) {
      const nin = this.sizes[l], nout = this.sizes[l + 1];
      const y = new Float32Array(B * nout);
      sgemm(false, true, B, nout, nin, 1, h, this.weights[l], 0, y);
      const b = this.biases[l];
      const last = l === this.layers - 1;
      for (let r = 0; r < B; r++) {
        for (let j = 0; j < nout; j++) {
          const v = y[r * nout + j] + b[j];
          y[r * nout + j] = last || v > 0 ? v : 0;
        }
      }
      h = y;
      if (!last) acts.push(y);
    }
    if (train) {
      this.acts = acts;
      this.batch = B;
    }
    return h;
  }

  /** Accumulates parameter gradients from d loss / d output (B, out); returns d loss / d input (B, in). */
  backward(gradOut: Float32Array): Float32Array {
    const B = this.batch;
    if (this.acts.length === 0) throw new Error('MLP backward() needs a forward(..., train = true) first');
    if (gradOut.length !== B * this.sizes[this.layers]) throw new RangeError(`MLP gradOut has ${gradOut.length} values; expected ${B * this.sizes[this.layers]}`);
    let g = gradOut;
    for (let l = this.layers - 1; l >= 0; l--) {
      const nin = this.sizes[l], nout = this.sizes[l + 1];
      const x = this.acts[l];
      // dW += g^T x ; db += sum_rows g ; dx = g W, then through the ReLU of layer l - 1.
      sgemm(true, false, nout, nin, B, 1, g, x, 1, this.gradW[l]);
      const gb = this.gradB[l];
      for (let r = 0; r < B; r++) for (let j = 0; j < nout; j++) gb[j] += g[r * nout + j];
      const dx = new Float32Array(B * nin);
      sgemm(false, false, B, nin, nout, 1, g, this.weights[l], 0, dx);
      if (l > 0) for (let i = 0; i < dx.length; i++) if (x[i] <= 0) dx[i] = 0;
      g = dx;
    }
    return g;
  }

  zeroGrad(): void {
    for (const a of [...this.gradW, ...this.gradB]) a.fill(0);
  }

  /** Sum of squared gradient entries (for global-norm clipping with other parameter groups). */
  gradSquaredNorm(): number {
    let s = 0;
    for (const a of [...this.gradW, ...this.gradB]) for (let i = 0; i < a.length; i++) s += a[i] * a[i];
    return s;
  }

  scaleGrad(f: number): void {
    for (const a of [...this.gradW, ...this.gradB]) for (let i = 0; i < a.length; i++) a[i] *= f;
  }

  /** One AdamW step (decoupled weight decay on the weights, not the biases). */
  step(o: AdamWOptions): void {
    const { lr, weightDecay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 } = o;
    const params = [...this.weights, ...this.biases];
    const grads = [...this.gradW, ...this.gradB];
    if (this.m.length === 0) {
      this.m = params.map((p) => new Float32Array(p.length));
      this.v = params.map((p) => new Float32Array(p.length));
    }
    this.t++;
    const c1 = 1 - Math.pow(beta1, this.t), c2 = 1 - Math.pow(beta2, this.t);
    params.forEach((p, k) => {
      const g = grads[k], m = this.m[k], v = this.v[k];
      const decay = k < this.weights.length ? weightDecay : 0;
      for (let i = 0; i < p.length; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        p[i] -= lr * (m[i] / c1 / (Math.sqrt(v[i] / c2) + eps) + decay * p[i]);
      }
    });
  }

  /** Tensors by name: `{prefix}.{l}.weight` (out, in) and `{prefix}.{l}.bias`. */
  tensors(prefix: string): Record<string, { shape: number[]; data: Float32Array }> {
    const out: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (let l = 0; l < this.layers; l++) {
      out[`${prefix}.${l}.weight`] = { shape: [this.sizes[l + 1], this.sizes[l]], data: this.weights[l] };
      out[`${prefix}.${l}.bias`] = { shape: [this.sizes[l + 1]], data: this.biases[l] };
    }
    return out;
  }

  /**
   * Optimiser state (for checkpoints): step count and moments, one array per parameter tensor in
   * the order weights[0..], biases[0..] (empty before the first step). Copies.
   */
  optimizerState(): MlpOptimizerState {
    return { t: this.t, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /**
   * Restores a saved optimiser state, checked before anything changes: t a non-negative integer,
   * and either no moments (t = 0) or one m and one v per parameter tensor with its exact size,
   * finite values and v >= 0. Errors name the tensor ('weights[1]', 'biases[0]') and index.
   */
  setOptimizerState(s: MlpOptimizerState): void {
    if (typeof s !== 'object' || s === null) throw new TypeError('MLP optimizer state: expected { t, m, v }');
    if (!Number.isSafeInteger(s.t) || s.t < 0) throw new RangeError(`MLP optimizer state: t must be a non-negative integer, got ${s.t}`);
    if (!Array.isArray(s.m) || !Array.isArray(s.v)) throw new TypeError('MLP optimizer state: m and v must be arrays of Float32Array');
    const names = [...this.weights.map((_, l) => `weights[${l}]`), ...this.biases.map((_, l) => `biases[${l}]`)];
    const sizes = [...this.weights, ...this.biases].map((p) => p.length);
    if (s.m.length === 0 && s.v.length === 0) {
      if (s.t !== 0) throw new RangeError(`MLP optimizer state: t = ${s.t} steps but no moments`);
    } else {
      for (const [which, arr] of [['m', s.m], ['v', s.v]] as const) {
        if (arr.length !== sizes.length) throw new RangeError(`MLP optimizer state: ${which} has ${arr.length} tensors, the MLP has ${sizes.length}`);
        arr.forEach((a, k) => {
          if (!(a instanceof Float32Array)) throw new TypeError(`MLP optimizer state: ${which} of ${names[k]} must be a Float32Array`);
          if (a.length !== sizes[k]) throw new RangeError(`MLP optimizer state: ${which} of ${names[k]} has ${a.length} values, expected ${sizes[k]}`);
          for (let i = 0; i < a.length; i++) {
            if (!Number.isFinite(a[i])) throw new RangeError(`MLP optimizer state: ${which} of ${names[k]}[${i}] is ${a[i]}`);
            if (which === 'v' && a[i] < 0) throw new RangeError(`MLP optimizer state: v of ${names[k]}[${i}] is negative (${a[i]})`);
            if (s.t === 0 && a[i] !== 0) throw new RangeError(`MLP optimizer state: t is 0 but ${which} of ${names[k]}[${i}] is not zero`);
          }
        });
      }
    }
    this.t = s.t;
    this.m = s.m.map((a) => a.slice());
    this.v = s.v.map((a) => a.slice());
  }
}

export interface MlpOptimizerState {
  /** AdamW steps taken. */
  t: number;
  /** First and second moments, one per parameter tensor (weights[0..], then biases[0..]); empty before the first step. */
  m: Float32Array[];
  v: Float32Array[];
}
