// The HTTP JSON service over a Recommender (fastify):
//
//   POST /recommend        { user | history | userVector, k?, exclude?, excludeSeen? } -> { user?, items: [{ id, index, score }] }
//   POST /recommend/batch  { requests: [...] }                                          -> { results: [...] }
//   GET  /health           status, model, where ONNX Runtime and top-K run
//   GET  /metrics          Prometheus text: requests by route/status, latency histogram, model info
//
// Errors are JSON { error: { code, message } } with 400 (bad input, malformed JSON), 404 (unknown
// user or route), 413 (body too large), 415 (not JSON), 503 (overloaded: too many requests
// waiting, or closing), 500 only for faults of the service.
// Requests are validated on arrival; valid single requests that arrive together are grouped into
// one recommendBatch run (one ONNX run and one top-K call), so concurrency turns into batching
// instead of a queue of single runs. The backbone runs in a worker thread (Recommender option
// worker: true) so the event loop keeps accepting and validating requests.
import Fastify, { type FastifyInstance, type FastifyError } from 'fastify';
import type { Recommendation, Recommender, ResolvedRequest } from './recommender.js';
import { RecommenderError, badRequest } from './errors.js';
import { ServiceMetrics } from './metrics.js';
import { backendInfo } from '../native/addon.js';

export interface ServiceOptions {
  /** Largest request body in bytes (default 1 MiB); larger ones get 413. */
  bodyLimit?: number;
  /** Most requests grouped into one run (default 64), and the most a /recommend/batch may hold (default 1024). */
  maxBatch?: number;
  maxBatchRequests?: number;
  /** Runs in flight at once (default 2: one batch's top-K overlaps the next one's ONNX run). */
  maxInFlight?: number;
  /** Requests waiting for a run beyond which new ones get 503 at once (default 4096): bounded memory under overload. */
  maxQueue?: number;
}

interface Waiting {
  req: ResolvedRequest;
  resolve: (r: Recommendation) => void;
  reject: (e: unknown) => void;
}

/** Groups requests that arrive in the same turn of the event loop into one batch run. */
class MicroBatcher {
  private queue: Waiting[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly rec: Recommender, private readonly maxBatch: number, private readonly maxInFlight: number, private readonly maxQueue: number) {}

  submit(req: ResolvedRequest): Promise<Recommendation> {
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new RecommenderError('ERR_TOKENREC_OVERLOADED', `the service is overloaded (${this.queue.length} requests waiting); retry later`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const part = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      this.rec
        .runResolved(part.map((w) => w.req))
        .then(
          (res) => part.forEach((w, i) => w.resolve(res[i])),
          (e) => part.forEach((w) => w.reject(e)),
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/** Builds the fastify app (not listening yet). Closing the app does not dispose the Recommender. */
export function createService(rec: Recommender, opts: ServiceOptions = {}): { app: FastifyInstance; metrics: ServiceMetrics } {
  const maxBatch = opts.maxBatch ?? 64;
  const maxBatchRequests = opts.maxBatchRequests ?? 1024;
  const info = rec.info();
  const metrics = new ServiceMetrics({
    dataset: info.dataset,
    dir: info.dir,
    scoring: info.scoring,
    index: info.index,
    topk_backend: info.topkBackend,
    onnx_provider: info.onnx.provider,
    preset: info.preset,
  });
  const batcher = new MicroBatcher(rec, maxBatch, opts.maxInFlight ?? 2, opts.maxQueue ?? 4096);
  const app = Fastify({ bodyLimit: opts.bodyLimit ?? 1 << 20, logger: false, return503OnClosing: true, forceCloseConnections: 'idle' });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observe(route, request.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err: FastifyError | RecommenderError | Error, request, reply) => {
    if (err instanceof RecommenderError) {
      reply.code(err.statusCode).send(errorBody(err.code, err.message));
      return;
    }
    const status = (err as FastifyError).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // fastify's own client errors: malformed JSON (400), body too large (413), media type (415)
      reply.code(status).send(errorBody((err as FastifyError).code ?? 'ERR_BAD_REQUEST', err.message));
      return;
    }
    process.stderr.write(`tokenrec serve: ${request.method} ${request.url}: ${err.stack ?? err.message}\n`);
    reply.code(500).send(errorBody('ERR_INTERNAL', 'internal error (see the service log)'));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  app.post('/recommend', async (request) => {
    const resolved = rec.resolve(request.body as never);
    const out = await batcher.submit(resolved);
    metrics.usersScored++;
    return out;
  });

  app.post('/recommend/batch', async (request) => {
    const body = request.body as { requests?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !Array.isArray(body.requests)) throw badRequest('the body is { requests: [ { user | history | userVector, k?, exclude? }, ... ] }');
    if (body.requests.length === 0 || body.requests.length > maxBatchRequests) throw badRequest(`requests must hold 1 to ${maxBatchRequests} requests, got ${body.requests.length}`);
    const resolved = body.requests.map((r, i) => {
      try {
        return rec.resolve(r as never);
      } catch (e) {
        if (e instanceof RecommenderError) e.message = `requests[${i}]: ${e.message}`;
        throw e;
      }
    });
    const results = await rec.runResolved(resolved);
    metrics.usersScored += results.length;
    return { results };
  });

  app.get('/health', async () => {
    const kernels = backendInfo();
    return {
      status: rec.disposed ? 'closing' : 'ok',
      model: rec.info(),
      kernels: { compiled: kernels.compiled, cuda: kernels.cuda.available ? kernels.cuda.device : `not usable (${kernels.cuda.reason})`, cpu: kernels.cpuIsa, threads: kernels.threads },
      uptimeSeconds: process.uptime(),
    };
  });

  app.get('/metrics', async (_request, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8');
    return metrics.render();
  });

  return { app, metrics };
}
