// End-to-end batch scoring throughput: Recommender.scoreAll (prompt -> ONNX backbone -> top-K ->
// ids) over the users of a model directory, in users per second, for a few batch sizes; the
// baseline in the same run is one recommend() call per user (no batching).
//
//   npx tsc -p . && node dist/bench/score-all.js <model-dir> [--batch-sizes 64,256] [--k 20]
//        [--users N] [--baseline-users 200] [--threads N] [--data <path>] [--out bench/results/score-all.json]
//
// --users limits the users scored (default: all); --threads sets ONNX Runtime's intra-op threads
// (the native top-K uses TOKENREC_NUM_THREADS). The ONNX session runs inline (batch mode).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Recommender } from '../lib/serve/recommender.js';
import { packageRoot } from '../lib/native/addon.js';
import { describeMachine, machineInfo } from './machine.js';

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const dir = process.argv[2];
if (!dir || dir.startsWith('--')) {
  console.error('usage: node dist/bench/score-all.js <model-dir> [--batch-sizes 64,256] [--k 20] [--users N] [--baseline-users 200] [--threads N] [--data path] [--out file]');
  process.exit(2);
}
const batchSizes = arg('batch-sizes', '64,256')!.split(',').map(Number);
const k = Number(arg('k', '20'));
const threads = arg('threads') ? Number(arg('threads')) : undefined;
const baselineUsers = Number(arg('baseline-users', '200'));
const outPath = arg('out', join(packageRoot(), 'bench', 'results', 'score-all.json'))!;

const machine = machineInfo();
console.log(describeMachine(machine));
const t0 = performance.now();
const rec = await Recommender.load(dir, { threads, data: arg('data') });
const loadSeconds = (performance.now() - t0) / 1000;
const info = rec.info();
const limit = Math.min(rec.numUsers, Number(arg('users', String(rec.numUsers))));
const users = Array.from({ length: limit }, (_, u) => rec.userId(u));
console.log(`${info.dataset}: ${info.users} users, ${info.items} items, d = ${info.dim}, ${info.preset}, P = ${info.queries}, history cap ${info.historyCap}, ${info.scoring} scoring; ` +
  `ONNX ${info.onnx.provider} (${threads ?? 'default'} threads), top-K ${info.topkBackend}; loaded in ${loadSeconds.toFixed(2)} s`);

interface Row { method: string; batch: number; users: number; seconds: number; usersPerSecond: number; cpuSecondsPerUser: number }
const rows: Row[] = [];

async function measure(method: string, batch: number, n: number, run: () => Promise<number>): Promise<void> {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const done = await run();
  const seconds = (performance.now() - w0) / 1000;
  const c = process.cpuUsage(c0);
  if (done !== n) throw new Error(`${method}: scored ${done} users, expected ${n}`);
  const row = { method, batch, users: n, seconds, usersPerSecond: n / seconds, cpuSecondsPerUser: (c.user + c.system) / 1e6 / n };
  rows.push(row);
  console.log(`${method.padEnd(22)} batch ${String(batch).padStart(5)}  ${String(n).padStart(8)} users  ${seconds.toFixed(2).padStart(8)} s  ${row.usersPerSecond.toFixed(0).padStart(7)} users/s  ${(row.cpuSecondsPerUser * 1e3).toFixed(2)} CPU-ms/user`);
}

// Warm-up (first ONNX runs allocate).
for await (const _ of rec.scoreAll(users.slice(0, Math.min(64, limit)), { k })) void _;

const nb = Math.min(baselineUsers, limit);
await measure('recommend() per user', 1, nb, async () => {
  let n = 0;
  for (let u = 0; u < nb; u++) {
    await rec.recommend({ user: users[u], k });
    n++;
  }
  return n;
});
for (const b of batchSizes) {
  await measure('scoreAll', b, limit, async () => {
    let n = 0;
    for await (const _ of rec.scoreAll(users, { k, batchSize: b })) n++;
    return n;
  });
}
await rec.dispose();
const base = rows[0].usersPerSecond;
for (const r of rows.slice(1)) console.log(`scoreAll batch ${r.batch}: ${(r.usersPerSecond / base).toFixed(1)}x the per-user baseline`);
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify({ machine, model: info, k, threads: threads ?? null, loadSeconds, rows }, null, 2) + '\n');
console.log(`results -> ${outPath}`);
