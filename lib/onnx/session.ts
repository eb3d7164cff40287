// A thin wrapper around an onnxruntime-node InferenceSession: creation from bytes or a file on
// the CPU execution provider with a configurable thread count, runs with plain typed arrays,
// input checks against the model's declared inputs (names, dtypes, ranks, fixed and symbolic
// dimensions) with errors that name the input, and dispose() after which any use is an error.
//
// Note: onnxruntime-node's run() computes synchronously on the calling thread (it only defers
// the start with setImmediate), so a server should own its session in a worker thread.
import * as ort from 'onnxruntime-node';
import { readFileSync, statSync } from 'node:fs';

/** Element types accepted and returned (ONNX Runtime's names). */
export type OnnxTensorType = 'float32' | 'int64' | 'int32' | 'bool' | 'uint8' | 'float64';
export type OnnxTensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array | Float64Array;

export interface OnnxTensor {
  data: OnnxTensorData;
  /** Row-major dimensions; their product equals data.length. */
  dims: readonly number[];
}

export interface OnnxOutput {
  type: string;
  data: OnnxTensorData;
  dims: number[];
}

/** A declared graph input or output: shape entries are sizes, symbolic names, or -1 when unknown. */
export interface OnnxValueSpec {
  name: string;
  type: string;
  shape: readonly (number | string)[];
}

export interface OnnxSessionOptions {
  /** Threads for one operator (ONNX Runtime's default is one per physical core). */
  intraOpNumThreads?: number;
  /** Threads across independent operators (only used by the parallel executor; default 1). */
  interOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Only the CPU execution provider ships in onnxruntime-node here (no CUDA build; WebGPU finds no adapter). */
  executionProvider?: 'cpu';
  /**
   * Whether idle intra-op threads spin-wait for the next parallel section (ONNX Runtime's
   * default, true: lowest latency for back-to-back runs, but the spinning burns cores that
   * other work on a small shared machine, or the Node event loop, would use).
   */
  allowSpinning?: boolean;
  /** ONNX Runtime's own logging, 0 verbose ... 4 fatal; default 4: its errors reach the caller as exceptions anyway. */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

const ARRAY_OF: Record<OnnxTensorType, string> = {
  float32: 'Float32Array',
  int64: 'BigInt64Array',
  int32: 'Int32Array',
  bool: 'Uint8Array',
  uint8: 'Uint8Array',
  float64: 'Float64Array',
};

function typeOfData(d: unknown): OnnxTensorType | undefined {
  if (d instanceof Float32Array) return 'float32';
  if (d instanceof BigInt64Array) return 'int64';
  if (d instanceof Int32Array) return 'int32';
  if (d instanceof Uint8Array) return 'uint8';
  if (d instanceof Float64Array) return 'float64';
  return undefined;
}

function describeShape(s: readonly (number | string)[]): string {
  return `[${s.map((d) => (typeof d === 'string' ? d : d < 0 ? '?' : String(d))).join(', ')}]`;
}

/** What runOnnxT5 and serving need from a session, inline (OnnxSession) or in a worker (OnnxWorkerSession). */
export interface OnnxRunner {
  readonly provider: 'cpu';
  readonly inputs: readonly OnnxValueSpec[];
  readonly outputs: readonly OnnxValueSpec[];
  readonly source: string;
  readonly disposed: boolean;
  run(feeds: Record<string, OnnxTensor>, fetches?: string[]): Promise<Record<string, OnnxOutput>>;
  dispose(): Promise<void>;
}

/** A checked input, ready to become an ONNX Runtime tensor (plain data: it can cross to a worker). */
export interface CheckedTensor {
  type: OnnxTensorType;
  data: OnnxTensorData;
  dims: number[];
}

/**
 * Checks feeds against the declared inputs: names, dtypes, ranks, fixed dims, symbolic dims
 * shared between inputs, and data lengths. Int32Array ids are widened to int64 for int64
 * inputs (a copy); every other dtype mismatch is an error.
 */
export function checkFeeds(inputs: readonly OnnxValueSpec[], feeds: Record<string, OnnxTensor>, source: string): Record<string, CheckedTensor> {
  if (feeds === null || typeof feeds !== 'object') throw new TypeError(`${source}: run() takes an object of named input tensors`);
  const known = new Set(inputs.map((i) => i.name));
  for (const name of Object.keys(feeds)) {
    if (!known.has(name)) throw new Error(`${source}: unknown input '${name}' (the model's inputs: ${[...known].join(', ')})`);
  }
  const symbols = new Map<string, { size: number; input: string }>();
  const out: Record<string, CheckedTensor> = {};
  for (const spec of inputs) {
    const f = feeds[spec.name];
    if (f === undefined || f === null) throw new Error(`${source}: missing input '${spec.name}' (${spec.type} ${describeShape(spec.shape)})`);
    const { data, dims } = f;
    const have = typeOfData(data);
    if (!have) throw new TypeError(`input '${spec.name}': data must be a typed array (${ARRAY_OF[spec.type as OnnxTensorType] ?? spec.type})`);
    if (!Array.isArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TypeError(`input '${spec.name}': dims must be an array of non-negative integers, got ${JSON.stringify(dims)}`);
    }
    if (dims.length !== spec.shape.length) {
      throw new RangeError(`input '${spec.name}': expected rank ${spec.shape.length} ${describeShape(spec.shape)}, got dims [${dims.join(', ')}]`);
    }
    spec.shape.forEach((want, axis) => {
      const got = dims[axis];
      if (typeof want === 'number' && want >= 0 && got !== want) {
        throw new RangeError(`input '${spec.name}': dimension ${axis} must be ${want} ${describeShape(spec.shape)}, got dims [${dims.join(', ')}]`);
      }
      if (typeof want === 'string' && want !== '') {
        const seen = symbols.get(want);
        if (seen && seen.size !== got) {
          throw new RangeError(`input '${spec.name}': dimension ${axis} ('${want}') is ${got} but input '${seen.input}' has ${want} = ${seen.size}`);
        }
        if (!seen) symbols.set(want, { size: got, input: spec.name });
      }
    });
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new RangeError(`input '${spec.name}': dims [${dims.join(', ')}] hold ${n} values but data has ${data.length}`);
    let typed: OnnxTensorData = data;
    let type: OnnxTensorType = have;
    if (spec.type === 'int64' && have === 'int32') {
      typed = BigInt64Array.from(data as Int32Array, (v) => BigInt(v));
      type = 'int64';
    } else if (spec.type === 'bool' && have === 'uint8') {
      type = 'bool';
    } else if (spec.type !== have) {
      throw new TypeError(`input '${spec.name}': expected ${spec.type} (${ARRAY_OF[spec.type as OnnxTensorType] ?? spec.type}), got ${data.constructor.name}`);
    }
    out[spec.name] = { type, data: typed, dims: [...dims] };
  }
  return out;
}

/** The outputs to fetch (default: all), checked against the declared ones. */
export function checkFetches(outputs: readonly OnnxValueSpec[], fetches: string[] | undefined, source: string): string[] {
  const names = fetches ?? outputs.map((o) => o.name);
  for (const n of names) {
    if (!outputs.some((o) => o.name === n)) throw new Error(`${source}: unknown output '${n}' (the model's outputs: ${outputs.map((o) => o.name).join(', ')})`);
  }
  return names;
}

/** Validates the options and turns them into ONNX Runtime session options (plain data). */
export function ortSessionOptions(opts: OnnxSessionOptions): ort.InferenceSession.SessionOptions {
  const t = opts.intraOpNumThreads;
  if (t !== undefined && !(Number.isInteger(t) && t >= 1)) throw new RangeError(`intraOpNumThreads must be a positive integer, got ${t}`);
  const ti = opts.interOpNumThreads;
  if (ti !== undefined && !(Number.isInteger(ti) && ti >= 1)) throw new RangeError(`interOpNumThreads must be a positive integer, got ${ti}`);
  if (opts.executionProvider !== undefined && opts.executionProvider !== 'cpu') {
    throw new RangeError(`executionProvider '${opts.executionProvider}' is not available (only 'cpu' is)`);
  }
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    logSeverityLevel: opts.logSeverityLevel ?? 4,
  };
  if (t !== undefined) so.intraOpNumThreads = t;
  if (ti !== undefined) so.interOpNumThreads = ti;
  if (opts.allowSpinning !== undefined) {
    // Session config entries (onnxruntime_session_options_config_keys.h), strings in Node.js.
    const flag = opts.allowSpinning ? '1' : '0';
    so.extra = { session: { intra_op: { allow_spinning: flag }, inter_op: { allow_spinning: flag } } };
  }
  return so;
}

/** ONNX bytes from bytes or a file, with a name for error messages. */
export function readModel(model: Uint8Array | string): { bytes: Uint8Array; source: string } {
  let bytes: Uint8Array;
  let source: string;
  if (typeof model === 'string') {
    source = model;
    try {
      if (!statSync(model).isFile()) throw new Error('not a file');
      bytes = readFileSync(model);
    } catch (e) {
      throw new Error(`ONNX model '${model}' cannot be read: ${(e as Error).message}`);
    }
  } else if (model instanceof Uint8Array) {
    source = `ONNX model (${model.byteLength} bytes)`;
    bytes = model;
  } else {
    throw new TypeError('ONNX session: model must be a Uint8Array of ONNX bytes or a file path');
  }
  if (bytes.byteLength === 0) throw new Error(`${source}: empty model`);
  return { bytes, source };
}

/** Declared inputs/outputs from ONNX Runtime's metadata. */
export function valueSpecs(m: readonly ort.InferenceSession.ValueMetadata[]): OnnxValueSpec[] {
  return m.map((v) => (v.isTensor ? { name: v.name, type: v.type, shape: [...v.shape] } : { name: v.name, type: 'non-tensor', shape: [] }));
}

/** Runs on the calling thread (see the note at the top of this file; OnnxWorkerSession runs in a worker). */
export class OnnxSession implements OnnxRunner {
  private session: ort.InferenceSession | null;
  /** The execution provider every node runs on. */
  readonly provider: 'cpu' = 'cpu';
  readonly intraOpNumThreads: number | undefined;
  readonly allowSpinning: boolean;
  private readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  readonly inputs: readonly OnnxValueSpec[];
  readonly outputs: readonly OnnxValueSpec[];
  /** Where the model came from, for error messages. */
  readonly source: string;

  private constructor(session: ort.InferenceSession, source: string, opts: OnnxSessionOptions) {
    this.session = session;
    this.source = source;
    this.intraOpNumThreads = opts.intraOpNumThreads;
    this.allowSpinning = opts.allowSpinning ?? true;
    this.logSeverityLevel = opts.logSeverityLevel ?? 4;
    this.inputs = valueSpecs(session.inputMetadata);
    this.outputs = valueSpecs(session.outputMetadata);
  }

  /** Loads a model from ONNX bytes or a file path. */
  static async create(model: Uint8Array | string, opts: OnnxSessionOptions = {}): Promise<OnnxSession> {
    const sessionOptions = ortSessionOptions(opts);
    const { bytes, source } = readModel(model);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (e) {
      throw new Error(`${source}: ONNX Runtime could not load the model: ${(e as Error).message}`);
    }
    return new OnnxSession(session, source, opts);
  }

  get disposed(): boolean {
    return this.session === null;
  }

  /** ONNX Runtime's version and the execution providers this build offers. */
  static runtimeInfo(): { version: string; providers: { name: string; bundled: boolean }[] } {
    return { version: ort.env.versions.node ?? ort.env.versions.common, providers: ort.listSupportedBackends() };
  }

  /** Runs the model; `fetches` limits the outputs computed (default: all). */
  async run(feeds: Record<string, OnnxTensor>, fetches?: string[]): Promise<Record<string, OnnxOutput>> {
    const session = this.session;
    if (!session) throw new Error(`${this.source}: the ONNX session was disposed`);
    const checked = checkFeeds(this.inputs, feeds, this.source);
    const names = checkFetches(this.outputs, fetches, this.source);
    const tensors: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(checked)) tensors[k] = new ort.Tensor(t.type, t.data as never, t.dims);
    let res: ort.InferenceSession.ReturnType;
    try {
      res = await session.run(tensors, names, { logSeverityLevel: this.logSeverityLevel });
    } catch (e) {
      throw new Error(`${this.source}: ONNX Runtime failed: ${(e as Error).message}`);
    }
    const out: Record<string, OnnxOutput> = {};
    for (const n of names) {
      const t = res[n];
      out[n] = { type: t.type, data: t.data as OnnxTensorData, dims: [...t.dims] };
    }
    return out;
  }

  /** Releases the native session; later calls throw. Calling it twice is harmless. */
  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }
}
