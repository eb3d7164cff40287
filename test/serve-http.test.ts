// The HTTP service (lib/serve/http.ts) on a real socket, and `tokenrec serve` as a process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Recommender, type Recommendation } from '../lib/serve/recommender.js';
import { createService } from '../lib/serve/http.js';
import { tempDir } from './helpers/tmp.js';
import { buildServeModel } from './helpers/serve-model.js';
import { ROOT, runCli } from './helpers/cli.js';

const tmp = tempDir('tokenrec-serve-http-');
let dir: string;
let served: Recommender; // backbone in a worker, as the service runs it
let direct: Recommender; // inline, for reference results
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  dir = buildServeModel(tmp.dir);
  served = await Recommender.load(dir, { worker: true, threads: 1 });
  direct = await Recommender.load(dir, { threads: 1 });
  app = createService(served, { bodyLimit: 4096, maxBatch: 16 }).app;
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await app?.close();
  await served?.dispose();
  await direct?.dispose();
});

async function post(path: string, body: string | object, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const res = await fetch(base + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json: json as Record<string, unknown> & { error?: { code: string; message: string } } };
}

/** Same ranking up to float rounding: prompts padded to another length give ~1e-5 relative differences in z. */
function expectSame(a: Recommendation, b: Recommendation, rel = 1e-4): void {
  expect(a.items).toHaveLength(b.items.length);
  a.items.forEach((x, j) => {
    const tol = rel * Math.max(1, Math.abs(x.score));
    expect(Math.abs(x.score - b.items[j].score)).toBeLessThan(tol);
    // ids agree except where the item is elsewhere in the list with a score within rounding
    if (x.id !== b.items[j].id) {
      const other = b.items.find((y) => y.id === x.id);
      expect(other, `item ${x.id} missing`).toBeDefined();
      expect(Math.abs(other!.score - x.score)).toBeLessThan(tol);
    }
  });
}

describe('HTTP service', () => {
  it('answers bad requests with the right status and keeps serving', async () => {
    const cases: [string | object, number, string][] = [
      [{ user: 'nobody', k: 5 }, 404, 'ERR_TOKENREC_UNKNOWN_USER'],
      [{ user: 'u1', k: 0 }, 400, 'ERR_TOKENREC_BAD_REQUEST'],
      [{ user: 'u1', k: 'ten' }, 400, 'ERR_TOKENREC_BAD_REQUEST'],
      [{ history: ['i1', 'not-an-item'] }, 400, 'ERR_TOKENREC_UNKNOWN_ITEM'],
      [{}, 400, 'ERR_TOKENREC_BAD_REQUEST'],
      [[1, 2], 400, 'ERR_TOKENREC_BAD_REQUEST'],
      ['{"user": "u1", ', 400, 'FST_ERR_CTP_INVALID_JSON_BODY'],
      [JSON.stringify({ user: 'u1', pad: 'x'.repeat(5000) }), 413, 'FST_ERR_CTP_BODY_TOO_LARGE'],
    ];
    for (const [body, status, code] of cases) {
      const r = await post('/recommend', body);
      expect(r.status, JSON.stringify(body).slice(0, 60)).toBe(status);
      expect(r.json.error?.code).toBe(code);
      expect(r.json.error?.message.length).toBeGreaterThan(5);
    }
    expect((await post('/recommend', 'user=u1', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect((await fetch(base + '/nowhere')).status).toBe(404);
    expect((await post('/recommend/batch', { requests: [] })).status).toBe(400);
    const bb = await post('/recommend/batch', { requests: [{ user: 'u1' }, { user: 'ghost' }] });
    expect(bb.status).toBe(404);
    expect(bb.json.error?.message).toMatch(/requests\[1\]: unknown user 'ghost'/);
    const ok = await post('/recommend', { user: 'u1', k: 5 });
    expect(ok.status).toBe(200);
    expect((ok.json as unknown as Recommendation).items).toHaveLength(5);
  });

  it('agrees with the library under concurrent load (requests grouped into batches)', async () => {
    const reqs = Array.from({ length: 60 }, (_, j) => (j % 5 === 4 ? { history: [`i${j}`, `i${j + 1}`], k: 7 } : { user: `u${j}`, k: 7 }));
    const answers = await Promise.all(reqs.map((r) => post('/recommend', r)));
    const want = await direct.recommendBatch(reqs);
    answers.forEach((a, j) => {
      expect(a.status).toBe(200);
      expectSame(a.json as unknown as Recommendation, want[j]);
    });
    const batch = await post('/recommend/batch', { requests: reqs.slice(0, 20) });
    expect(batch.status).toBe(200);
    (batch.json.results as Recommendation[]).forEach((r, j) => expectSame(r, want[j]));
  });

  it('reports health and Prometheus metrics', async () => {
    const h = (await (await fetch(base + '/health')).json()) as { status: string; model: { users: number; onnx: { provider: string; worker: boolean } } };
    expect(h.status).toBe('ok');
    expect(h.model.users).toBe(150);
    expect(h.model.onnx).toMatchObject({ provider: 'cpu', worker: true });
    const m = await fetch(base + '/metrics');
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await m.text();
    expect(text).toMatch(/tokenrec_http_requests_total\{route="\/recommend",method="POST",status="200"\} \d+/);
    expect(text).toMatch(/tokenrec_http_requests_total\{route="\/recommend",method="POST",status="404"\} 1\n/);
    expect(text).toMatch(/tokenrec_http_requests_total\{route="\/recommend",method="POST",status="413"\} 1\n/);
    expect(text).toMatch(/tokenrec_http_request_duration_seconds_bucket\{route="\/recommend",method="POST",le="\+Inf"\} \d+/);
    expect(text).toMatch(/tokenrec_model_info\{[^}]*scoring="(cosine|dot)"[^}]*\} 1/);
  });
});

describe('HTTP service under overload', () => {
  it('answers 503 beyond its queue bound and recovers', async () => {
    const small = createService(served, { maxQueue: 2, maxBatch: 1, maxInFlight: 1 }).app;
    const url = await small.listen({ port: 0, host: '127.0.0.1' });
    try {
      const statuses = await Promise.all(Array.from({ length: 30 }, (_, j) =>
        fetch(url + '/recommend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: `u${j}`, k: 3 }) }).then(async (r) => [r.status, ((await r.json()) as { error?: { code: string } }).error?.code] as const)));
      expect(statuses.filter(([s]) => s === 200).length).toBeGreaterThan(0);
      const rejected = statuses.filter(([s]) => s !== 200);
      expect(rejected.length).toBeGreaterThan(0);
      for (const [s, code] of rejected) expect([s, code]).toEqual([503, 'ERR_TOKENREC_OVERLOADED']);
      const again = await fetch(url + '/recommend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'u1', k: 3 }) });
      expect(again.status).toBe(200);
    } finally {
      await small.close();
    }
  });
});

describe('tokenrec recommend', () => {
  it('prints the same recommendations as the library, and a clear error for an unknown user', async () => {
    const r = runCli(['recommend', dir, '--user', 'u9', '-k', '6', '--json', '--threads', '1'], { NODE_NO_WARNINGS: '1' });
    expect(r.status, r.stderr).toBe(0);
    expectSame(JSON.parse(r.stdout) as Recommendation, await direct.recommend({ user: 'u9', k: 6 }));
    const bad = runCli(['recommend', dir, '--user', 'nobody'], { NODE_NO_WARNINGS: '1' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe("tokenrec: unknown user 'nobody'");
  });
});

describe('tokenrec serve', () => {
  it('serves on a free port and shuts down cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--no-warnings', join(ROOT, 'dist', 'lib', 'cli', 'main.js'), 'serve', dir, '--port', '0', '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d;
          const m = /listening on (http:\/\/[^ ]+)/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
      });
      const res = await fetch(url + '/recommend', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'u2', k: 4 }) });
      expect(res.status).toBe(200);
      expectSame((await res.json()) as Recommendation, await direct.recommend({ user: 'u2', k: 4 }));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(err).toMatch(/SIGTERM, closing/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
