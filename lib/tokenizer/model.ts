// A trained (or training) MQ-Tokenizer: the native model plus its configuration; encoding of any
// vectors (pure, deterministic, no mask), saving to and loading from safetensors.
import { resolveBackend, type Backend } from '../native/addon.js';
import { expectTensor, f32, readSafetensors, requireFinite, writeSafetensors, type TensorMap } from '../io/safetensors.js';
import { resolveTokenizerConfig, type TokenizerConfig } from './config.js';
import { newNativeTokenizer, type NativeLayout, type NativeMqTokenizer } from './native.js';

/** Rows per native call when encoding many vectors: bounds the (rows, K, dc) intermediate. */
const ENCODE_CHUNK = 4096;

export function checkVectors(vectors: Float32Array, dim: number, what: string): number {
  if (!(vectors instanceof Float32Array)) throw new TypeError(`${what} must be a Float32Array`);
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`${what}: dimension must be a positive integer, got ${dim}`);
  if (vectors.length % dim) throw new RangeError(`${what}: length ${vectors.length} is not a multiple of the dimension ${dim}`);
  for (let i = 0; i < vectors.length; i++) {
    if (!Number.isFinite(vectors[i])) throw new RangeError(`${what}: row ${Math.floor(i / dim)}, column ${i % dim} is not finite (${vectors[i]})`);
  }
  return vectors.length / dim;
}

export class Tokenizer {
  readonly config: TokenizerConfig;
  /** Input vector dimension d. */
  readonly dim: number;
  /** @internal */
  readonly native: NativeMqTokenizer;
  private readonly layoutCache: NativeLayout;
  /** Input standardisation x' = (x - mean) / std per dimension, fitted on the training vectors (identity until set). */
  private mean: Float32Array;
  private std: Float32Array;
  private identity = true;

  /** A fresh (untrained) tokenizer for vectors of `dim`. */
  constructor(config: TokenizerConfig, dim: number) {
    this.config = config;
    this.dim = dim;
    this.native = newNativeTokenizer({
      d: dim,
      K: config.K,
      L: config.L,
      dc: config.dc,
      encHidden: config.encHidden,
      decHidden: config.decHidden,
      maskRate: config.maskRate,
      beta: config.beta,
      decorrelation: config.decorrelation,
      lr: config.lr,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: config.weightDecay,
      seed: config.seed,
      independentMasks: config.independentMasks,
    });
    this.layoutCache = this.native.layout();
    this.mean = new Float32Array(dim);
    this.std = new Float32Array(dim).fill(1);
  }

  /** Sets the per-dimension standardisation (mean (dim), std (dim), std > 0). */
  setStandardization(mean: Float32Array, std: Float32Array): void {
    if (mean.length !== this.dim || std.length !== this.dim) throw new RangeError(`standardisation: mean and std need ${this.dim} values`);
    for (let j = 0; j < this.dim; j++) {
      if (!Number.isFinite(mean[j]) || !(std[j] > 0) || !Number.isFinite(std[j])) throw new RangeError(`standardisation: bad mean/std at dimension ${j} (${mean[j]}, ${std[j]})`);
    }
    this.mean = Float32Array.from(mean);
    this.std = Float32Array.from(std);
    this.identity = this.mean.every((m) => m === 0) && this.std.every((v) => v === 1);
  }

  /** Fits the standardisation to rows `ids` of `vectors` (all rows when ids is absent). */
  fitStandardization(vectors: Float32Array, ids?: ArrayLike<number>): void {
    const d = this.dim;
    const n = ids ? ids.length : vectors.length / d;
    const row = (i: number) => (ids ? ids[i] : i) * d;
    const mean = new Float64Array(d), sq = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += vectors[row(i) + j] / n;
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) sq[j] += (vectors[row(i) + j] - mean[j]) ** 2 / n;
    // A constant dimension keeps scale 1 (nothing to standardise, and no division by zero).
    this.setStandardization(Float32Array.from(mean), Float32Array.from(sq, (v) => (v > 1e-20 ? Math.sqrt(v) : 1)));
  }

  /** The standardised copy of `vectors` that the native model sees (the input itself when identity). */
  standardize(vectors: Float32Array): Float32Array {
    if (this.identity) return vectors;
    const d = this.dim, out = new Float32Array(vectors.length);
    for (let i = 0; i < vectors.length; i++) out[i] = (vectors[i] - this.mean[i % d]) / this.std[i % d];
    return out;
  }

  get K(): number {
    return this.config.K;
  }

  /**
   * Codes of `vectors` ((n * dim) -> (n * K)), with the frozen tokenizer: no mask, a pure function
   * of the parameters and the input (the input is never modified), identical for any batching.
   */
  async encode(vectors: Float32Array, opts: { backend?: Backend } = {}): Promise<Int32Array> {
    const n = checkVectors(vectors, this.dim, 'encode: vectors');
    const backend = resolveBackend(opts.backend ?? 'cpu');
    const out = new Int32Array(n * this.K);
    for (let r0 = 0; r0 < n; r0 += ENCODE_CHUNK) {
      const r1 = Math.min(n, r0 + ENCODE_CHUNK);
      const { codes } = await this.native.encode(this.standardize(vectors.subarray(r0 * this.dim, r1 * this.dim)), backend);
      out.set(codes, r0 * this.K);
    }
    return out;
  }

  /** Reconstructions through the quantiser ((n * dim)), with their codes. */
  async reconstruct(vectors: Float32Array): Promise<{ recon: Float32Array; codes: Int32Array }> {
    const n = checkVectors(vectors, this.dim, 'reconstruct: vectors');
    const recon = new Float32Array(n * this.dim);
    const codes = new Int32Array(n * this.K);
    for (let r0 = 0; r0 < n; r0 += ENCODE_CHUNK) {
      const r1 = Math.min(n, r0 + ENCODE_CHUNK);
      const r = await this.native.reconstruct(this.standardize(vectors.subarray(r0 * this.dim, r1 * this.dim)));
      // back to the input's scale
      if (!this.identity) for (let i = 0; i < r.recon.length; i++) r.recon[i] = r.recon[i] * this.std[i % this.dim] + this.mean[i % this.dim];
      recon.set(r.recon, r0 * this.dim);
      codes.set(r.codes, r0 * this.K);
    }
    return { recon, codes };
  }

  /** Encoder outputs ((n * K * dc), laid out (n, K, dc)), no mask. */
  async encoderOutputs(vectors: Float32Array): Promise<Float32Array> {
    const n = checkVectors(vectors, this.dim, 'encoderOutputs: vectors');
    const w = this.K * this.config.dc;
    const out = new Float32Array(n * w);
    for (let r0 = 0; r0 < n; r0 += ENCODE_CHUNK) {
      const r1 = Math.min(n, r0 + ENCODE_CHUNK);
      out.set(await this.native.encoderOutputs(this.standardize(vectors.subarray(r0 * this.dim, r1 * this.dim))), r0 * w);
    }
    return out;
  }

  /** The K codebooks, (K * L * dc), laid out (K, L, dc) (a copy). */
  codebooks(): Float32Array {
    const p = this.native.getParams();
    const o = this.layoutCache.codebookOffset;
    return p.slice(o, o + this.K * this.config.L * this.config.dc);
  }

  /**
   * Weights under PyTorch-style names: encoders.{k}.{l}.weight (out, in) / .bias, codebooks (K, L, dc),
   * decoder.{l}.*, and input.mean / input.std (dim): the standardisation applied before the encoders.
   */
  tensors(): TensorMap {
    const p = this.native.getParams();
    const lay = this.layoutCache;
    const t: TensorMap = {};
    const mlp = (prefix: string, base: number, dims: number[]) => {
      let o = base;
      for (let l = 0; l + 1 < dims.length; l++) {
        const inW = dims[l], outW = dims[l + 1];
        t[`${prefix}.${l}.weight`] = f32([outW, inW], p.slice(o, o + outW * inW));
        o += outW * inW;
        t[`${prefix}.${l}.bias`] = f32([outW], p.slice(o, o + outW));
        o += outW;
      }
    };
    for (let k = 0; k < this.K; k++) mlp(`encoders.${k}`, lay.encoderOffsets[k], lay.encoderDims);
    t.codebooks = f32([this.K, this.config.L, this.config.dc], p.slice(lay.codebookOffset, lay.codebookOffset + this.K * this.config.L * this.config.dc));
    mlp('decoder', lay.decoderOffset, lay.decoderDims);
    t['input.mean'] = f32([this.dim], this.mean.slice());
    t['input.std'] = f32([this.dim], this.std.slice());
    return t;
  }

  /** Writes the weights (atomically), with the configuration and dimension in the metadata. */
  save(path: string): void {
    writeSafetensors(path, this.tensors(), { format: 'tokenrec-mq-tokenizer', config: JSON.stringify(this.config), dim: String(this.dim) });
  }

  /** Loads a tokenizer written by save(), checking every tensor's shape and value. */
  static load(path: string): Tokenizer {
    const { tensors, metadata } = readSafetensors(path);
    if (metadata.format !== 'tokenrec-mq-tokenizer' || !metadata.config || !metadata.dim) {
      throw new Error(`${path}: not a tokenrec MQ-Tokenizer file (metadata format '${metadata.format ?? ''}')`);
    }
    const config = resolveTokenizerConfig(JSON.parse(metadata.config) as TokenizerConfig);
    const tok = new Tokenizer(config, Number(metadata.dim));
    const lay = tok.layoutCache;
    const p = new Float32Array(lay.numParams);
    const put = (name: string, shape: number[], offset: number) => {
      const t = expectTensor(tensors, name, shape, path);
      requireFinite(t, name, path);
      p.set(t.data as Float32Array, offset);
      return offset + t.data.length;
    };
    const mlp = (prefix: string, base: number, dims: number[]) => {
      let o = base;
      for (let l = 0; l + 1 < dims.length; l++) {
        o = put(`${prefix}.${l}.weight`, [dims[l + 1], dims[l]], o);
        o = put(`${prefix}.${l}.bias`, [dims[l + 1]], o);
      }
    };
    for (let k = 0; k < config.K; k++) mlp(`encoders.${k}`, lay.encoderOffsets[k], lay.encoderDims);
    put('codebooks', [config.K, config.L, config.dc], lay.codebookOffset);
    mlp('decoder', lay.decoderOffset, lay.decoderDims);
    tok.native.setParams(p);
    const dim = tok.dim;
    const mean = expectTensor(tensors, 'input.mean', [dim], path), std = expectTensor(tensors, 'input.std', [dim], path);
    tok.setStandardization(mean.data as Float32Array, std.data as Float32Array);
    return tok;
  }

  dispose(): void {
    this.native.dispose();
  }

  get disposed(): boolean {
    return this.native.disposed;
  }
}
