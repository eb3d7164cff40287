// Top-K retrieval benchmark: the native fused cosine top-K (ItemIndex, CPU) vs faiss-node's
// IndexFlatIP over normalised vectors vs a naive TypeScript loop, in one run.
//
//   npm run build && node dist/bench/topk.js [--sizes 100000,1000000] [--batches 1,64,1024]
//        [--dim 64] [--k 20] [--seconds 2] [--naive-limit 20000000] [--out bench/results/topk.json]
//
// Prints backendInfo() and the machine, then one row per (N, batch, method): queries/s (wall),
// queries per CPU-second, ms per batch, GFLOP/s (2*N*dim per query) and GB/s (N*dim*4 item bytes
// per batch), and ratios to faiss and to the naive loop. The naive loop runs only where N*batch <= --naive-limit (it would take
// minutes on the large cases). Writes the results as JSON to --out.
//
// faiss runs OpenMP threads: OMP_NUM_THREADS defaults to the native kernels' thread count and
// OPENBLAS_NUM_THREADS to 1 (set before any addon loads, as faiss-node reads them at load time).
import { cpus, loadavg } from 'node:os';
import { readFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';

const threadsWanted = process.env.TOKENREC_NUM_THREADS ?? String(cpus().length);
process.env.OMP_NUM_THREADS ??= threadsWanted;
process.env.OPENBLAS_NUM_THREADS ??= '1';

const { backendInfo, packageRoot } = await import('../lib/native/addon.js');
const { machineInfo, describeMachine } = await import('./machine.js');
const { ItemIndex } = await import('../lib/retrieval/topk.js');
const { FaissIndex, faissAvailable } = await import('../lib/retrieval/faiss.js');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const sizes = arg('sizes', '100000,1000000').split(',').map(Number);
const batches = arg('batches', '1,64,1024').split(',').map(Number);
const dim = Number(arg('dim', '64'));
const k = Number(arg('k', '20'));
const minSeconds = Number(arg('seconds', '2'));
const naiveLimit = Number(arg('naive-limit', '20000000'));
const outPath = arg('out', join(packageRoot(), 'bench', 'results', 'topk.json'));

// Seeded uniform vectors in [-1, 1).
function vectors(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const v = new Float32Array(n * dim);
  for (let i = 0; i < v.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    v[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return v;
}

// The naive baseline: normalise, score every item in a plain loop, keep a sorted top-k list.
function naiveTopK(items: Float32Array, norms: Float32Array, queries: Float32Array): Int32Array {
  const N = items.length / dim;
  const B = queries.length / dim;
  const out = new Int32Array(B * k);
  const bestS = new Float64Array(k);
  const bestJ = new Int32Array(k);
  for (let b = 0; b < B; b++) {
    let qn = 0;
    for (let d = 0; d < dim; d++) qn += queries[b * dim + d] ** 2;
    qn = Math.sqrt(qn) || 1;
    bestS.fill(-Infinity);
    bestJ.fill(-1);
    for (let j = 0; j < N; j++) {
      let s = 0;
      const o = j * dim;
      for (let d = 0; d < dim; d++) s += queries[b * dim + d] * items[o + d];
      s /= qn * norms[j];
      if (s <= bestS[k - 1]) continue;
      let i = k - 1;
      while (i > 0 && bestS[i - 1] < s) {
        bestS[i] = bestS[i - 1];
        bestJ[i] = bestJ[i - 1];
        i--;
      }
      bestS[i] = s;
      bestJ[i] = j;
    }
    out.set(bestJ, b * k);
  }
  return out;
}

// Wall seconds per call, and process CPU seconds per call (all threads: the kernels' pool,
// OpenMP's, the JS thread). On a shared machine the wall rate drops with the load; work per
// CPU-second is steadier, and equals the wall rate times the threads that were busy.
async function time(fn: () => Promise<unknown> | unknown): Promise<{ seconds: number; cpuSeconds: number; reps: number }> {
  await fn(); // warm-up
  let reps = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let el = 0;
  do {
    await fn();
    reps++;
    el = (performance.now() - t0) / 1000;
  } while (el < minSeconds);
  const c = process.cpuUsage(c0);
  return { seconds: el / reps, cpuSeconds: (c.user + c.system) / 1e6 / reps, reps };
}

function cpuModel(): { model: string; mhz: number; flags: string } {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /model name\s*:\s*(.*)/.exec(text)?.[1] ?? cpus()[0]?.model ?? 'unknown';
    const mhz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(text)?.[1] ?? cpus()[0]?.speed ?? 0);
    const flags = /flags\s*:\s*(.*)/.exec(text)?.[1] ?? '';
    return { model, mhz, flags };
  } catch {
    return { model: cpus()[0]?.model ?? 'unknown', mhz: cpus()[0]?.speed ?? 0, flags: '' };
  }
}

const info = backendInfo();
const cpu = cpuModel();
const cores = cpus().length;
const fma = /\bfma\b/.test(cpu.flags);
const lanes = /\bavx512f\b/.test(cpu.flags) ? 16 : /\bavx2\b/.test(cpu.flags) ? 8 : 4;
// Peak fp32: cores x GHz x lanes x 2 FMA pipes x 2 flops (Zen 3 / Haswell-class: 2 FMA units).
const peakGflops = (cores * cpu.mhz * lanes * (fma ? 4 : 2)) / 1000;
let bandwidth: number | undefined;
let bandwidthBusy: number | undefined;
const benchExe = join(packageRoot(), 'build', 'bench_topk');
if (existsSync(benchExe)) {
  const out = execFileSync(benchExe, ['--bandwidth'], { encoding: 'utf8' });
  const m = /read bandwidth: ([\d.]+) GB\/s \(\d+ threads; ([\d.]+) GB\/s per busy-thread time\)/.exec(out);
  bandwidth = m ? Number(m[1]) : undefined;
  bandwidthBusy = m ? Number(m[2]) : undefined;
}
const faiss = faissAvailable();

console.log(`machine: ${describeMachine()}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine slows every method)`);
console.log(`backendInfo(): ${JSON.stringify(info)}`);
console.log(`peak fp32 ~${peakGflops.toFixed(0)} GFLOP/s (${cores} cores x ${lanes} lanes x ${fma ? '2 FMA units x 2' : '2'} flops); measured read bandwidth ${bandwidth?.toFixed(1) ?? '?'} GB/s wall, ${bandwidthBusy?.toFixed(1) ?? '?'} GB/s per busy-thread time (build/bench_topk --bandwidth)`);
console.log(`faiss: ${faiss.ok ? `on (OMP_NUM_THREADS=${process.env.OMP_NUM_THREADS}, OPENBLAS_NUM_THREADS=${process.env.OPENBLAS_NUM_THREADS})` : `off: ${faiss.reason}`}`);
console.log(`dim ${dim}, k ${k}, cosine; at least ${minSeconds} s per measurement; naive loop where N*batch <= ${naiveLimit}\n`);

interface Row {
  N: number;
  batch: number;
  method: 'native' | 'faiss' | 'naive';
  queriesPerSecond: number;
  /** Queries per CPU-second of the whole process. */
  queriesPerCpuSecond: number;
  msPerBatch: number;
  gflops: number;
  gbps: number;
  reps: number;
}
const rows: Row[] = [];
const head = ['N', 'batch', 'method', 'queries/s', 'q/cpu-s', 'ms/batch', 'GFLOP/s', 'GB/s', 'vs faiss', 'vs naive', 'cpu: vs faiss'];
console.log(head.map((h, i) => (i < 3 ? h.padEnd(i === 2 ? 7 : 8) : h.padStart(10))).join(' '));

for (const N of sizes) {
  const items = vectors(N, 1);
  const native = await ItemIndex.create(items, { dim, similarity: 'cosine' });
  const fx = faiss.ok ? await FaissIndex.create(items, { dim, metric: 'cosine' }) : undefined;
  const norms = new Float32Array(N);
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += items[j * dim + d] ** 2;
    norms[j] = Math.sqrt(s) || 1;
  }
  for (const batch of batches) {
    const queries = vectors(batch, 1000 + batch);
    const res: Partial<Record<Row['method'], Row>> = {};
    const record = (method: Row['method'], t: { seconds: number; cpuSeconds: number; reps: number }) => {
      const r: Row = {
        N,
        batch,
        method,
        queriesPerSecond: batch / t.seconds,
        queriesPerCpuSecond: batch / t.cpuSeconds,
        msPerBatch: t.seconds * 1000,
        gflops: (2 * N * dim * batch) / t.seconds / 1e9,
        gbps: (N * dim * 4) / t.seconds / 1e9,
        reps: t.reps,
      };
      res[method] = r;
      rows.push(r);
    };
    record('native', await time(() => native.search(queries, k, undefined, { backend: 'cpu' })));
    if (fx) record('faiss', await time(() => fx.search(queries, k)));
    if (N * batch <= naiveLimit) record('naive', await time(() => naiveTopK(items, norms, queries)));
    // Sanity: the backends agree on the best item of each query (ties aside).
    if (fx) {
      const a = await native.search(queries, k, undefined, { backend: 'cpu' });
      const b = await fx.search(queries, k);
      let same = 0;
      for (let q = 0; q < batch; q++) same += Number(a.ids[q * k] === b.ids[q * k]);
      if (same !== batch) console.log(`  note: native and faiss disagree on the top item of ${batch - same} of ${batch} queries`);
    }
    for (const m of ['native', 'faiss', 'naive'] as const) {
      const r = res[m];
      if (!r) continue;
      const vs = (o?: Row) => (o ? (r.queriesPerSecond / o.queriesPerSecond).toFixed(2) + 'x' : '-');
      const vsCpu = (o?: Row) => (o ? (r.queriesPerCpuSecond / o.queriesPerCpuSecond).toFixed(2) + 'x' : '-');
      console.log(
        [String(N).padEnd(8), String(batch).padEnd(8), m.padEnd(7), r.queriesPerSecond.toFixed(1).padStart(10),
          r.queriesPerCpuSecond.toFixed(1).padStart(10), r.msPerBatch.toFixed(2).padStart(10), r.gflops.toFixed(1).padStart(10),
          r.gbps.toFixed(1).padStart(10), vs(res.faiss).padStart(10), vs(res.naive).padStart(10), vsCpu(res.faiss).padStart(13)].join(' '),
      );
    }
  }
  native.dispose();
  fx?.dispose();
}

mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(
  outPath,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: { ...machineInfo(), mhz: cpu.mhz, loadavg: loadavg(), peakGflops, readBandwidthGBps: bandwidth, readBandwidthBusyGBps: bandwidthBusy },
      backendInfo: info,
      faiss: { ...faiss, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS, OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS },
      params: { dim, k, minSeconds, naiveLimit, similarity: 'cosine' },
      rows,
    },
    null,
    2,
  ) + '\n',
);
console.log(`\nwrote ${outPath}`);
