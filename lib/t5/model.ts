// The native T5 backbone (native/src/cpu/t5_*.cc) with types and validation: forward to the
// decoder's final hidden states, backward from a gradient on them, AdamW steps, tensors under
// their Hugging Face names, safetensors checkpoints.
import { addon } from '../native/addon.js';
import { expectTensor, f32, readSafetensors, requireFinite, writeSafetensors, type TensorMap } from '../io/safetensors.js';
import { t5TensorShapes, validateT5Config, type T5Config } from './config.js';

/** A batch of B sequence pairs; token ids row-major. */
export interface T5Batch {
  /** (B * S) encoder token ids, each row padded to the same length S. */
  inputIds: Int32Array;
  /** (B * S) 1 for a token, 0 for padding; omitted = no padding. Every row needs at least one 1. */
  attentionMask?: Int32Array;
  /** (B * T) decoder token ids (teacher-forced; position t sees positions <= t). */
  decoderInputIds: Int32Array;
  /** B. */
  batchSize: number;
}

export interface T5ForwardOptions extends T5Batch {
  /** Training mode: dropout on, and activations kept for backward(). Default false. */
  train?: boolean;
}

export interface T5StepOptions {
  lr: number;
  /** Decoupled weight decay (AdamW), on every tensor except the norm weights. Default 0. */
  weightDecay?: number;
  /** Clip the gradient to this global L2 norm first; 0 or omitted = no clipping. */
  clipNorm?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface T5InputGradients {
  /** (B * S * dModel) d loss / d encoder input embeddings, by position. */
  encoder: Float32Array;
  /** (B * T * dModel) d loss / d decoder input embeddings, by position. */
  decoder: Float32Array;
}

/** AdamW's state of the backbone (for checkpoints that resume exactly). */
export interface T5OptimizerState {
  /** Updates taken so far (the bias corrections depend on it). */
  steps: number;
  /** First and second moments by Hugging Face tensor name, each of the tensor's size. */
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

interface NativeT5 {
  forward(o: {
    batch: number;
    encoderLength: number;
    decoderLength: number;
    inputIds: Int32Array;
    attentionMask?: Int32Array;
    decoderInputIds: Int32Array;
    train: boolean;
  }): Promise<Float32Array>;
  backward(g: Float32Array): Promise<void>;
  step(o: T5StepOptions): Promise<{ gradNorm: number }>;
  zeroGrad(): void;
  getTensors(): Record<string, Float32Array>;
  getGradients(): Record<string, Float32Array>;
  setTensors(t: Record<string, Float32Array>): number;
  tensorInfo(): Record<string, number[]>;
  inputGradients(): T5InputGradients | null;
  setDropoutSeed(seed: number): void;
  getOptimizerState(): T5OptimizerState;
  setOptimizerState(s: T5OptimizerState): void;
  numParameters(): number;
  dispose(): void;
}
type NativeT5Ctor = new (config: T5Config, seed: number) => NativeT5;

/**
 * Tensors found in Hugging Face T5 checkpoints that this backbone does not use: copies of the
 * shared embedding, the LM head, and the (unused) relative bias some checkpoints keep in the
 * first cross-attention layer. Loading ignores them; any other unknown name is an error.
 */
const IGNORED = [/^encoder\.embed_tokens\.weight$/, /^decoder\.embed_tokens\.weight$/, /^lm_head\.weight$/, /^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$/];

function shapeOf(a: Int32Array | Float32Array | undefined, what: string): void {
  if (a !== undefined && !(a instanceof Int32Array)) throw new TypeError(`${what} must be an Int32Array`);
}

export class T5Model {
  readonly config: T5Config;
  private native: NativeT5 | null;
  // Calls run one after another in the order they were made (forward, backward, step...), even
  // when the caller does not await each one.
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(config: T5Config, native: NativeT5) {
    this.config = config;
    this.native = native;
  }

  /** A randomly initialised T5 (Hugging Face's initialisation), deterministic for a seed. */
  static create(config: T5Config, seed = 0): T5Model {
    validateT5Config(config);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    const Ctor = addon().T5Model as NativeT5Ctor | undefined;
    if (typeof Ctor !== 'function') throw new Error('tokenrec: the native addon has no T5Model: rebuild it with `npm run build:native`');
    return new T5Model({ ...config }, new Ctor({ ...config }, seed));
  }

  /**
   * A T5 with the given tensors (Hugging Face names, see t5TensorShapes). Every tensor of the
   * config must be there with its exact shape; unknown names are an error (except the unused
   * ones HF checkpoints carry: embed_tokens copies, lm_head, a cross-attention relative bias).
   */
  static fromTensors(config: T5Config, tensors: TensorMap | Record<string, Float32Array>, source = 'tensors'): T5Model {
    validateT5Config(config);
    const shapes = t5TensorShapes(config);
    const map: TensorMap = {};
    for (const [name, t] of Object.entries(tensors)) {
      if (t instanceof Float32Array) {
        const shape = shapes[name];
        const n = shape ? shape.reduce((a, b) => a * b, 1) : t.length;
        if (t.length !== n) throw new Error(`${source}: tensor '${name}' has ${t.length} values, expected [${shape}] (${n})`);
        map[name] = f32(shape ?? [t.length], t);
      } else {
        map[name] = t;
      }
    }
    for (const name of Object.keys(map)) {
      if (!(name in shapes) && !IGNORED.some((r) => r.test(name))) {
        throw new Error(`${source}: unexpected tensor '${name}' for this T5 config (is it a checkpoint of another architecture or size?)`);
      }
    }
    const data: Record<string, Float32Array> = {};
    for (const [name, shape] of Object.entries(shapes)) {
      const t = expectTensor(map, name, shape, source);
      if (!(t.data instanceof Float32Array)) throw new TypeError(`${source}: tensor '${name}' must be float (F32/F16/BF16), got ${t.dtype}`);
      requireFinite(t, name, source);
      data[name] = t.data;
    }
    const model = T5Model.create(config, 0);
    model.live().setTensors(data);
    return model;
  }

  /** Loads a safetensors checkpoint (HF tensor names); the config must match its shapes. */
  static load(path: string, config: T5Config): T5Model {
    return T5Model.fromTensors(config, readSafetensors(path).tensors, path);
  }

  /** Writes the weights as safetensors (HF names and shapes), atomically, with the config as metadata. */
  save(path: string, metadata: Record<string, string> = {}): void {
    const shapes = t5TensorShapes(this.config);
    const tensors = this.getTensors();
    const out: TensorMap = {};
    for (const [name, shape] of Object.entries(shapes)) out[name] = f32(shape, tensors[name]);
    writeSafetensors(path, out, { format: 'pt', t5_config: JSON.stringify(this.config), ...metadata });
  }

  private live(): NativeT5 {
    if (!this.native) throw new Error('T5Model has been disposed');
    return this.native;
  }

  private enqueue<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private validateBatch(b: T5Batch): { B: number; S: number; T: number } {
    const B = b.batchSize;
    if (!Number.isInteger(B) || B < 1) throw new RangeError(`batchSize must be a positive integer, got ${B}`);
    shapeOf(b.inputIds, 'inputIds');
    shapeOf(b.decoderInputIds, 'decoderInputIds');
    shapeOf(b.attentionMask, 'attentionMask');
    if (!b.inputIds || b.inputIds.length === 0 || b.inputIds.length % B) {
      throw new RangeError(`inputIds.length (${b.inputIds?.length}) must be a positive multiple of batchSize (${B})`);
    }
    if (!b.decoderInputIds || b.decoderInputIds.length === 0 || b.decoderInputIds.length % B) {
      throw new RangeError(`decoderInputIds.length (${b.decoderInputIds?.length}) must be a positive multiple of batchSize (${B})`);
    }
    const S = b.inputIds.length / B;
    const T = b.decoderInputIds.length / B;
    const V = this.config.vocabSize;
    for (const [name, ids] of [['inputIds', b.inputIds], ['decoderInputIds', b.decoderInputIds]] as const) {
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] < 0 || ids[i] >= V) throw new RangeError(`${name}[${i}] = ${ids[i]} is not a token id of this T5 (vocabSize ${V})`);
      }
    }
    if (b.attentionMask) {
      const m = b.attentionMask;
      if (m.length !== B * S) throw new RangeError(`attentionMask.length (${m.length}) must equal inputIds.length (${B * S})`);
      for (let r = 0; r < B; r++) {
        let ones = 0;
        for (let s = 0; s < S; s++) {
          const v = m[r * S + s];
          if (v !== 0 && v !== 1) throw new RangeError(`attentionMask[${r * S + s}] = ${v} must be 0 or 1`);
          ones += v;
        }
        if (ones === 0) throw new RangeError(`attentionMask row ${r} is all padding: every sequence needs at least one token`);
      }
    }
    return { B, S, T };
  }

  /**
   * The decoder's final hidden states, (B * T * dModel) row-major. With train: true, dropout is
   * applied and the activations are kept for the next backward(). The id arrays are read in
   * place: do not modify them until the Promise settles.
   */
  forward(o: T5ForwardOptions): Promise<Float32Array> {
    this.live();
    const { B, S, T } = this.validateBatch(o);
    return this.enqueue(() =>
      this.live().forward({
        batch: B,
        encoderLength: S,
        decoderLength: T,
        inputIds: o.inputIds,
        attentionMask: o.attentionMask,
        decoderInputIds: o.decoderInputIds,
        train: o.train ?? false,
      }),
    );
  }

  /** Adds d loss / d parameters for the last train forward, given d loss / d output (same size as the output). */
  backward(gradOutput: Float32Array): Promise<void> {
    this.live();
    if (!(gradOutput instanceof Float32Array)) throw new TypeError('gradOutput must be a Float32Array');
    return this.enqueue(() => this.live().backward(gradOutput));
  }

  /** Gradient clipping (global norm) and one AdamW update; resolves to the norm before clipping. */
  step(o: T5StepOptions): Promise<{ gradNorm: number }> {
    this.live();
    for (const k of ['lr', 'weightDecay', 'clipNorm'] as const) {
      const v = o[k];
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`step: ${k} must be a finite number >= 0, got ${v}`);
    }
    if (o.lr === undefined) throw new RangeError('step: lr is required');
    return this.enqueue(() => this.live().step(o));
  }

  /** Sets the accumulated gradients to zero (after the calls already queued). */
  zeroGrad(): Promise<void> {
    this.live();
    return this.enqueue(async () => this.live().zeroGrad());
  }

  /** Copies of all weights under their Hugging Face names. */
  getTensors(): Record<string, Float32Array> {
    return this.live().getTensors();
  }

  /** Copies of the accumulated gradients, under the weights' names. */
  getGradients(): Record<string, Float32Array> {
    return this.live().getGradients();
  }

  /** Replaces some weights (HF names; sizes must match). Unknown names are an error. */
  setTensors(tensors: Record<string, Float32Array>): void {
    const shapes = t5TensorShapes(this.config);
    for (const [name, t] of Object.entries(tensors)) {
      if (!(name in shapes)) throw new Error(`setTensors: this T5 has no tensor named '${name}'`);
      const n = shapes[name].reduce((a, b) => a * b, 1);
      if (!(t instanceof Float32Array) || t.length !== n) throw new RangeError(`setTensors: '${name}' must be a Float32Array of ${n} values ([${shapes[name]}])`);
    }
    this.live().setTensors(tensors);
  }

  /** Gradients with respect to the input embeddings (by position) of the last backward, or null. */
  inputGradients(): T5InputGradients | null {
    return this.live().inputGradients();
  }

  /** Restarts the dropout stream (to repeat a train forward exactly). */
  setDropoutSeed(seed: number): void {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    this.live().setDropoutSeed(seed);
  }

  /** Copies of AdamW's moments (by tensor name) and step count. */
  getOptimizerState(): T5OptimizerState {
    return this.live().getOptimizerState();
  }

  /**
   * Replaces AdamW's state with a saved one: every tensor's m and v (exact sizes, finite, v >= 0)
   * and the step count. Nothing changes unless all of it is valid.
   */
  setOptimizerState(s: T5OptimizerState): void {
    if (typeof s !== 'object' || s === null) throw new TypeError('setOptimizerState: expected { steps, m, v }');
    if (!Number.isSafeInteger(s.steps) || s.steps < 0) throw new RangeError(`setOptimizerState: steps must be a non-negative integer, got ${s.steps}`);
    this.live().setOptimizerState(s);
  }

  numParameters(): number {
    return this.live().numParameters();
  }

  /** Shapes of the tensors, by name, as the native model holds them. */
  tensorShapes(): Record<string, number[]> {
    return this.live().tensorInfo();
  }

  /** Frees the native weights; later calls throw. A call in flight finishes first. */
  dispose(): void {
    this.native?.dispose();
    this.native = null;
  }
}

/** Pads token sequences to one length: ids (B * S) with padId, attention mask (B * S). */
export function padSequences(seqs: number[][], padId = 0, length?: number): { ids: Int32Array; mask: Int32Array; length: number } {
  if (seqs.length === 0) throw new RangeError('padSequences: no sequences');
  const S = length ?? Math.max(...seqs.map((s) => s.length));
  if (S < 1) throw new RangeError('padSequences: every sequence is empty');
  const ids = new Int32Array(seqs.length * S).fill(padId);
  const mask = new Int32Array(seqs.length * S);
  seqs.forEach((s, b) => {
    if (s.length > S) throw new RangeError(`padSequences: sequence ${b} has ${s.length} tokens, more than the length ${S}`);
    if (s.length === 0) throw new RangeError(`padSequences: sequence ${b} is empty`);
    for (let i = 0; i < s.length; i++) {
      ids[b * S + i] = s[i];
      mask[b * S + i] = 1;
    }
  });
  return { ids, mask, length: S };
}

/** T5's relative-position bucket of each offset (key index - query index), from the native code. */
export function relativePositionBuckets(positions: Int32Array, bidirectional: boolean, numBuckets: number, maxDistance: number): Int32Array {
  const fn = addon().t5RelativePositionBuckets as
    | ((o: { positions: Int32Array; bidirectional: boolean; numBuckets: number; maxDistance: number }) => Int32Array)
    | undefined;
  if (typeof fn !== 'function') throw new Error('tokenrec: the native addon has no t5RelativePositionBuckets: rebuild it');
  return fn({ positions, bidirectional, numBuckets, maxDistance });
}
