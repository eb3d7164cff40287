// An ONNX Runtime session that lives in a worker thread, so that a run (which onnxruntime-node
// computes synchronously on the calling thread) never blocks the event loop of a server. Same
// surface as OnnxSession: inputs are checked on the calling thread with the same errors, copied
// to the worker, and the outputs come back by transfer (no copy). Runs are queued in the worker
// one after another. The worker holds the process open only while runs are pending.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import {
  checkFeeds, checkFetches, ortSessionOptions, readModel,
  type OnnxOutput, type OnnxRunner, type OnnxSessionOptions, type OnnxTensor, type OnnxValueSpec,
} from './session.js';

// Plain CommonJS run with `eval: true`, so it works the same from TypeScript sources (tests) and
// from the compiled package. Messages: create -> ready | create-error; run -> result | run-error;
// dispose -> the worker releases the session and exits.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
let session = null;
let queue = Promise.resolve();
const specs = (m) => m.map((v) => v.isTensor ? { name: v.name, type: v.type, shape: [...v.shape] } : { name: v.name, type: 'non-tensor', shape: [] });
const message = (e) => (e && e.message) ? e.message : String(e);
async function handle(msg) {
  if (msg.type === 'create') {
    try {
      session = await ort.InferenceSession.create(msg.model, msg.options);
      parentPort.postMessage({ type: 'ready', inputs: specs(session.inputMetadata), outputs: specs(session.outputMetadata) });
    } catch (e) {
      parentPort.postMessage({ type: 'create-error', message: message(e) });
    }
  } else if (msg.type === 'run') {
    try {
      const feeds = {};
      for (const [k, t] of Object.entries(msg.feeds)) feeds[k] = new ort.Tensor(t.type, t.data, t.dims);
      const res = await session.run(feeds, msg.fetches, msg.runOptions);
      const out = {};
      const transfer = [];
      for (const n of msg.fetches) {
        const t = res[n];
        // A private copy when the data does not own its whole buffer, so the transfer is safe.
        const data = (t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength) ? t.data : t.data.slice();
        out[n] = { type: t.type, data, dims: Array.from(t.dims) };
        if (!transfer.includes(data.buffer)) transfer.push(data.buffer);
      }
      parentPort.postMessage({ type: 'result', id: msg.id, out }, transfer);
    } catch (e) {
      parentPort.postMessage({ type: 'run-error', id: msg.id, message: message(e) });
    }
  } else if (msg.type === 'dispose') {
    try { if (session) await session.release(); } catch (e) { /* exiting anyway */ }
    session = null;
    process.exit(0);
  }
}
parentPort.on('message', (msg) => { queue = queue.then(() => handle(msg)); });
`;

interface Pending {
  resolve: (out: Record<string, OnnxOutput>) => void;
  reject: (e: Error) => void;
}

export class OnnxWorkerSession implements OnnxRunner {
  readonly provider: 'cpu' = 'cpu';
  readonly intraOpNumThreads: number | undefined;
  readonly allowSpinning: boolean;
  readonly inputs: readonly OnnxValueSpec[];
  readonly outputs: readonly OnnxValueSpec[];
  readonly source: string;
  private worker: Worker | null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly logSeverityLevel: number;
  /** Set when the worker died: every later call reports it. */
  private failure: Error | null = null;

  private constructor(worker: Worker, source: string, opts: OnnxSessionOptions, inputs: OnnxValueSpec[], outputs: OnnxValueSpec[]) {
    this.worker = worker;
    this.source = source;
    this.intraOpNumThreads = opts.intraOpNumThreads;
    this.allowSpinning = opts.allowSpinning ?? true;
    this.logSeverityLevel = opts.logSeverityLevel ?? 4;
    this.inputs = inputs;
    this.outputs = outputs;
    worker.on('message', (msg: { type: string; id: number; out?: Record<string, OnnxOutput>; message?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (this.pending.size === 0) worker.unref();
      if (msg.type === 'result') p.resolve(msg.out!);
      else p.reject(new Error(`${this.source}: ONNX Runtime failed: ${msg.message}`));
    });
    const fail = (e: Error) => {
      this.failure = e;
      this.worker = null;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(new Error(`${this.source}: the ONNX worker thread failed: ${e.message}`)));
    worker.on('exit', (code) => {
      if (this.worker) fail(new Error(`${this.source}: the ONNX worker thread exited (code ${code})`));
    });
    worker.unref();
  }

  /** Loads a model from ONNX bytes or a file path into a new worker thread. */
  static async create(model: Uint8Array | string, opts: OnnxSessionOptions = {}): Promise<OnnxWorkerSession> {
    const options = ortSessionOptions(opts);
    const { bytes, source } = readModel(model);
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath } });
    const meta = await new Promise<{ inputs: OnnxValueSpec[]; outputs: OnnxValueSpec[] }>((resolve, reject) => {
      const onMessage = (msg: { type: string; message?: string; inputs: OnnxValueSpec[]; outputs: OnnxValueSpec[] }) => {
        cleanup();
        if (msg.type === 'ready') resolve(msg);
        else reject(new Error(`${source}: ONNX Runtime could not load the model: ${msg.message}`));
      };
      const onError = (e: Error) => { cleanup(); reject(new Error(`${source}: the ONNX worker thread failed: ${e.message}`)); };
      const onExit = (code: number) => { cleanup(); reject(new Error(`${source}: the ONNX worker thread exited (code ${code}) while loading`)); };
      const cleanup = () => { worker.off('message', onMessage); worker.off('error', onError); worker.off('exit', onExit); };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      // The bytes are copied to the worker (structured clone); the caller keeps its array.
      worker.postMessage({ type: 'create', model: bytes, options });
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    return new OnnxWorkerSession(worker, source, opts, meta.inputs, meta.outputs);
  }

  get disposed(): boolean {
    return this.worker === null;
  }

  /** Runs the model in the worker; `fetches` limits the outputs computed (default: all). */
  run(feeds: Record<string, OnnxTensor>, fetches?: string[]): Promise<Record<string, OnnxOutput>> {
    return new Promise((resolve, reject) => {
      const worker = this.worker;
      if (!worker) throw this.failure ?? new Error(`${this.source}: the ONNX session was disposed`);
      const checked = checkFeeds(this.inputs, feeds, this.source);
      const names = checkFetches(this.outputs, fetches, this.source);
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ type: 'run', id, feeds: checked, fetches: names, runOptions: { logSeverityLevel: this.logSeverityLevel } });
    });
  }

  /** Releases the session and ends the worker; pending runs are rejected. Calling it twice is harmless. */
  async dispose(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    const err = new Error(`${this.source}: the ONNX session was disposed before the run finished`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.ref();
    worker.postMessage({ type: 'dispose' });
    await exited;
  }
}
