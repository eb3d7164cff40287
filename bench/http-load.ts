// A small bounded HTTP load generator for `tokenrec serve`: N concurrent keep-alive clients
// (node's http.Agent), each sending POST /recommend back to back for a fixed duration; reports
// requests per second, latency percentiles and failures (non-2xx answers, socket errors).
//
//   npx tsc -p . && node dist/bench/http-load.js <model-dir> [--concurrency 1,8,32] [--seconds 10]
//        [--k 20] [--history-fraction 0.1] [--threads N] [--out bench/results/http-load.json]
//   node dist/bench/http-load.js --url http://127.0.0.1:8080 --users u1,u2,... [...]
//
// With <model-dir> it starts `tokenrec serve <dir> --port 0` as a child process (the service in
// its own process, as deployed) and stops it with SIGTERM at the end. Requests: a random user of
// the model, or with probability --history-fraction a new user's history of 5 random items.
// The generator runs in this process on the same machine: on a small machine it competes with
// the service for CPU, so the numbers are a lower bound.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { packageRoot } from '../lib/native/addon.js';
import { describeMachine, machineInfo } from './machine.js';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const dir = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : undefined;
const concurrencies = arg('concurrency', '1,8,32')!.split(',').map(Number);
const seconds = Number(arg('seconds', '10'));
const k = Number(arg('k', '20'));
const historyFraction = Number(arg('history-fraction', '0.1'));
const outPath = arg('out', join(packageRoot(), 'bench', 'results', 'http-load.json'))!;

let child: ChildProcess | undefined;
let url = arg('url');
let users: string[] = arg('users')?.split(',') ?? [];
let items: string[] = [];

async function startServer(modelDir: string): Promise<string> {
  const extra = arg('threads') ? ['--threads', arg('threads')!] : [];
  child = spawn(process.execPath, ['--no-warnings', join(packageRoot(), 'dist', 'lib', 'cli', 'main.js'), 'serve', modelDir, '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child!.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+) (.*)/.exec(out);
      if (m) {
        console.log(`service: ${m[2]}`);
        resolve(m[1]);
      }
    });
    child!.on('exit', (code) => reject(new Error(`tokenrec serve exited (${code}) before listening`)));
  });
}

const agent = new Agent({ keepAlive: true, maxSockets: Math.max(...concurrencies) });

function call(path: string, body: string | undefined, method = body === undefined ? 'GET' : 'POST'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('timeout after 30 s')));
    req.end(body);
  });
}

let seed = 12345;
function rand(): number {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 4294967296;
}

function nextBody(): string {
  if (items.length && rand() < historyFraction) {
    const history = Array.from({ length: 5 }, () => items[Math.floor(rand() * items.length)]);
    return JSON.stringify({ history: [...new Set(history)], k });
  }
  return JSON.stringify({ user: users[Math.floor(rand() * users.length)], k });
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** CPU seconds (user + system, all threads) the service process has used: Linux /proc, when we started it. */
function serviceCpuSeconds(): number | undefined {
  if (!child?.pid) return undefined;
  try {
    const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

interface Row { serviceCpuMsPerRequest?: number; concurrency: number; seconds: number; requests: number; failures: number; rps: number; p50ms: number; p90ms: number; p99ms: number; maxms: number; firstFailure?: string }

async function run(concurrency: number): Promise<Row> {
  const latencies: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  const end = performance.now() + seconds * 1000;
  const cpu0 = serviceCpuSeconds();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const s = performance.now();
      try {
        const r = await call('/recommend', nextBody());
        if (r.status !== 200) {
          failures++;
          firstFailure ??= `${r.status} ${r.text.slice(0, 200)}`;
        } else latencies.push(performance.now() - s);
      } catch (e) {
        failures++;
        firstFailure ??= (e as Error).message;
      }
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const cpu1 = serviceCpuSeconds();
  const serviceCpuMsPerRequest = cpu0 !== undefined && cpu1 !== undefined ? ((cpu1 - cpu0) * 1000) / Math.max(1, latencies.length + failures) : undefined;
  const row = { serviceCpuMsPerRequest, concurrency, seconds: wall, requests: latencies.length + failures, failures, rps: latencies.length / wall, p50ms: percentile(latencies, 50), p90ms: percentile(latencies, 90), p99ms: percentile(latencies, 99), maxms: latencies[latencies.length - 1] ?? NaN, firstFailure };
  console.log(`concurrency ${String(concurrency).padStart(3)}: ${String(row.requests).padStart(6)} requests in ${wall.toFixed(1)} s, ${row.rps.toFixed(0).padStart(5)} req/s, ` +
    `p50 ${row.p50ms.toFixed(1)} ms, p90 ${row.p90ms.toFixed(1)} ms, p99 ${row.p99ms.toFixed(1)} ms, max ${row.maxms.toFixed(1)} ms, ${serviceCpuMsPerRequest !== undefined ? `service ${serviceCpuMsPerRequest.toFixed(1)} CPU-ms/request, ` : ''}${failures} failed${firstFailure ? ` (first: ${firstFailure})` : ''}`);
  return row;
}

const machine = machineInfo();
console.log(describeMachine(machine));
try {
  if (dir) url = await startServer(dir);
  if (!url) throw new Error('give a model directory or --url');
  const health = JSON.parse((await call('/health', undefined)).text) as { model: { users: number; items: number; dataset: string; scoring: string; onnx: unknown; topkBackend: string } };
  if (!users.length) {
    // The ids of a model directory are the dataset's: ask the service for one recommendation list per user id we can see.
    if (!dir) throw new Error('with --url, give --users id,id,...');
    const { Recommender } = await import('../lib/serve/recommender.js');
    const rec = await Recommender.load(dir, { threads: 1 });
    users = Array.from({ length: rec.numUsers }, (_, u) => rec.userId(u));
    items = Array.from({ length: rec.numItems }, (_, i) => rec.itemId(i));
    await rec.dispose();
  }
  console.log(`model: ${JSON.stringify(health.model)}`);
  // warm-up
  for (let i = 0; i < 20; i++) await call('/recommend', nextBody());
  const rows: Row[] = [];
  for (const c of concurrencies) rows.push(await run(c));
  const metrics = (await call('/metrics', undefined)).text;
  const served = [...metrics.matchAll(/tokenrec_http_requests_total\{route="\/recommend",method="POST",status="(\d+)"\} (\d+)/g)].map((m) => `${m[1]}: ${m[2]}`);
  console.log(`service's own count of /recommend answers by status: ${served.join(', ')}`);
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify({ machine, model: health.model, k, historyFraction, rows }, null, 2) + '\n');
  console.log(`results -> ${outPath}`);
  if (rows.some((r) => r.failures > 0)) process.exitCode = 1;
} finally {
  agent.destroy();
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}
