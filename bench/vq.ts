// MQ-Tokenizer kernels benchmark.
//   1. Batched nearest-codeword search (100k vectors, K = 3 codebooks of L = 256, d_c = 512):
//      contenders in CONTENDERS below (native CPU GEMM-based search, native CUDA when a device is
//      usable, faiss-node IndexFlatL2 with one index per codebook, a naive TypeScript loop on a
//      subset). Each receives the same data and its result is checked against the native CPU one.
//   2. Masked-MLP encoding throughput (the K encoders 64 -> 128 -> 256 -> 512), and full encoding
//      (encoders + search), native vs a naive TypeScript MLP on a subset.
// Rates are compared with the machine's FP32 peak (bench/README.md). Results: bench/results/vq.json.
// Run: npm run build && node dist/bench/vq.js [--quick] [--rows N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveTokenizerConfig } from '../lib/tokenizer/config.js';
import { Tokenizer } from '../lib/tokenizer/model.js';
import { vqNearest, vqNearestNaive } from '../lib/tokenizer/vq.js';
import { backendInfo } from '../lib/native/addon.js';
import { FaissIndex, faissAvailable } from '../lib/retrieval/faiss.js';
import { describeMachine, machineInfo, timeMs } from './machine.js';

export interface VqProblem {
  a: Float32Array; // (B, K, dc)
  codebooks: Float32Array; // (K, L, dc)
  B: number;
  K: number;
  L: number;
  dc: number;
}

export interface VqContender {
  name: string;
  /** true, or the reason it cannot run here. */
  available(): true | string;
  /** Rows it searches (a contender too slow for all of them runs on a prefix; its rate is per row). */
  rows(p: VqProblem): number;
  run(p: VqProblem, rows: number): Promise<Int32Array>;
}

function seeded(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const rowsArg = args.indexOf('--rows');
const B = rowsArg >= 0 ? Number(args[rowsArg + 1]) : quick ? 10_000 : 100_000;
const NAIVE_ROWS = quick ? 100 : 400;

export const CONTENDERS: VqContender[] = [
  {
    name: 'native cpu (sgemm + argmin)',
    available: () => true,
    rows: (p) => p.B,
    run: async (p) => (await vqNearest({ a: p.a, codebooks: p.codebooks, K: p.K, dim: p.dc, backend: 'cpu' })).idx,
  },
  {
    name: 'native cuda',
    available: () => (backendInfo().cuda.available ? true : `no CUDA device (${backendInfo().cuda.reason})`),
    rows: (p) => p.B,
    run: async (p) => (await vqNearest({ a: p.a, codebooks: p.codebooks, K: p.K, dim: p.dc, backend: 'cuda' })).idx,
  },
  {
    // One IndexFlatL2 per codebook, nearest codeword (k = 1) of that codebook's rows. faiss-node
    // takes number[] arrays, so each chunk of rows is converted (part of its real cost in Node).
    name: 'faiss-node IndexFlatL2 (one index per codebook)',
    available: () => {
      const f = faissAvailable();
      return f.ok ? true : (f.reason ?? 'faiss-node unavailable');
    },
    rows: (p) => p.B,
    run: async (p, rows) => {
      const idx = new Int32Array(rows * p.K);
      const chunk = 10_000;
      const part = new Float32Array(Math.min(rows, chunk) * p.dc);
      for (let k = 0; k < p.K; k++) {
        const ix = await FaissIndex.create(p.codebooks.subarray(k * p.L * p.dc, (k + 1) * p.L * p.dc), { dim: p.dc, metric: 'l2' });
        for (let r0 = 0; r0 < rows; r0 += chunk) {
          const n = Math.min(chunk, rows - r0);
          for (let b = 0; b < n; b++) part.set(p.a.subarray(((r0 + b) * p.K + k) * p.dc, ((r0 + b) * p.K + k + 1) * p.dc), b * p.dc);
          const res = await ix.search(part.subarray(0, n * p.dc), 1);
          for (let b = 0; b < n; b++) idx[(r0 + b) * p.K + k] = res.ids[b];
        }
      }
      return idx;
    },
  },
  {
    name: 'naive TypeScript loop',
    available: () => true,
    rows: (p) => Math.min(p.B, NAIVE_ROWS),
    run: async (p, rows) => vqNearestNaive(p.a.subarray(0, rows * p.K * p.dc), p.codebooks, p.K, p.dc).idx,
  },
];

async function main() {
  const machine = machineInfo();
  console.log(`machine: ${describeMachine(machine)}`);
  const K = 3, L = 256, dc = 512;
  const r = seeded(11);
  // Encoder-output-like data: clustered around the codewords plus noise, so the search is not trivial.
  const codebooks = Float32Array.from({ length: K * L * dc }, () => (r() * 2 - 1) * 0.1);
  const a = new Float32Array(B * K * dc);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < K; k++) {
      const l = Math.floor(r() * L);
      for (let e = 0; e < dc; e++) a[(b * K + k) * dc + e] = codebooks[(k * L + l) * dc + e] + (r() * 2 - 1) * 0.08;
    }
  const p: VqProblem = { a, codebooks, B, K, L, dc };
  const flopPerRow = 2 * K * L * dc; // the GEMM a.c for every codeword (norms and argmin are lower order)
  const results: Record<string, unknown>[] = [];
  let reference: Int32Array | undefined;
  const nearestOk = (got: Int32Array, rows: number) => {
    // Same codeword, or an equally near one (ties / fp32 rounding): compare distances.
    let bad = 0;
    for (let o = 0; o < rows * K; o++) {
      if (got[o] === reference![o]) continue;
      const k = o % K;
      const d = (l: number) => {
        let s = 0;
        for (let e = 0; e < dc; e++) s += (a[o * dc + e] - codebooks[(k * L + l) * dc + e]) ** 2;
        return s;
      };
      if (Math.abs(d(got[o]) - d(reference![o])) > 1e-4 * (1 + d(reference![o]))) bad++;
    }
    return bad;
  };
  for (const c of CONTENDERS) {
    const av = c.available();
    if (av !== true) {
      console.log(`${c.name}: skipped (${av})`);
      results.push({ name: c.name, skipped: av });
      continue;
    }
    const rows = c.rows(p);
    let idx: Int32Array = new Int32Array(0);
    const ms = await timeMs(async () => {
      idx = await c.run(p, rows);
    }, rows === B ? (quick ? 1 : 3) : 1);
    if (!reference) reference = idx;
    const mismatches = nearestOk(idx, rows);
    const rowsPerSec = rows / (ms / 1000);
    const gflops = (rowsPerSec * flopPerRow) / 1e9;
    results.push({ name: c.name, rows, ms, rowsPerSec, gflops, mismatches });
    console.log(`${c.name}: ${rows} rows in ${ms.toFixed(1)} ms = ${rowsPerSec.toFixed(0)} rows/s, ${gflops.toFixed(1)} GFLOP/s, ${mismatches} rows not nearest`);
  }
  const base = results.find((x) => x.name === 'naive TypeScript loop') as { rowsPerSec: number };
  for (const x of results as { name: string; rowsPerSec?: number; speedup?: number }[]) if (x.rowsPerSec) x.speedup = x.rowsPerSec / base.rowsPerSec;
  console.log('search speed-up over the naive loop: ' + (results as { name: string; speedup?: number }[]).filter((x) => x.speedup).map((x) => `${x.name} ${x.speedup!.toFixed(0)}x`).join(', '));

  // ---- encoders (masked-MLP forward, no mask at inference) and full encoding ----
  const d = 64;
  const cfg = resolveTokenizerConfig({ K, L, dc });
  const tok = new Tokenizer(cfg, d);
  const N = quick ? 5_000 : 20_000;
  const x = Float32Array.from({ length: N * d }, () => r() * 2 - 1);
  const dims = [d, ...cfg.encHidden, dc];
  let mlpFlopPerRow = 0;
  for (let l = 0; l + 1 < dims.length; l++) mlpFlopPerRow += 2 * dims[l] * dims[l + 1] * K;
  const encMs = await timeMs(() => tok.encoderOutputs(x), quick ? 1 : 3);
  const fullMs = await timeMs(() => tok.encode(x), quick ? 1 : 3);
  // Naive TypeScript MLP (same weights) on a subset, checked against the native outputs.
  const t = tok.tensors();
  const NAIVE_MLP = quick ? 50 : 200;
  const naiveEnc = () => {
    const out = new Float32Array(NAIVE_MLP * K * dc);
    for (let b = 0; b < NAIVE_MLP; b++)
      for (let k = 0; k < K; k++) {
        let h: Float32Array = x.subarray(b * d, (b + 1) * d);
        for (let l = 0; l + 1 < dims.length; l++) {
          const W = t[`encoders.${k}.${l}.weight`].data, bias = t[`encoders.${k}.${l}.bias`].data;
          const o = new Float32Array(dims[l + 1]);
          for (let j = 0; j < dims[l + 1]; j++) {
            let s = bias[j];
            for (let i = 0; i < dims[l]; i++) s += W[j * dims[l] + i] * h[i];
            o[j] = l + 2 < dims.length ? Math.max(0, s) : s;
          }
          h = o;
        }
        out.set(h, (b * K + k) * dc);
      }
    return out;
  };
  const t0 = performance.now();
  const naiveOut = naiveEnc();
  const naiveMs = performance.now() - t0;
  const nativeOut = await tok.encoderOutputs(x.subarray(0, NAIVE_MLP * d));
  let maxErr = 0;
  for (let i = 0; i < naiveOut.length; i++) maxErr = Math.max(maxErr, Math.abs(naiveOut[i] - nativeOut[i]));
  tok.dispose();
  const encRate = N / (encMs / 1000), naiveRate = NAIVE_MLP / (naiveMs / 1000), fullRate = N / (fullMs / 1000);
  const enc = {
    rows: N,
    encoderMs: encMs,
    encoderRowsPerSec: encRate,
    encoderGflops: (encRate * mlpFlopPerRow) / 1e9,
    fullEncodeMs: fullMs,
    fullEncodeRowsPerSec: fullRate,
    fullEncodeGflops: (fullRate * (mlpFlopPerRow + flopPerRow)) / 1e9,
    naiveRows: NAIVE_MLP,
    naiveRowsPerSec: naiveRate,
    speedup: encRate / naiveRate,
    maxAbsDiffVsNaive: maxErr,
  };
  console.log(`encoders (K = ${K} MLPs ${dims.join('-')}): ${encRate.toFixed(0)} vectors/s, ${enc.encoderGflops.toFixed(1)} GFLOP/s; naive TS ${naiveRate.toFixed(0)} vectors/s (${enc.speedup.toFixed(0)}x slower; max |diff| ${maxErr.toExponential(1)})`);
  console.log(`full encode (encoders + search): ${fullRate.toFixed(0)} vectors/s, ${enc.fullEncodeGflops.toFixed(1)} GFLOP/s`);
  mkdirSync(join('bench', 'results'), { recursive: true });
  writeFileSync(join('bench', 'results', 'vq.json'), JSON.stringify({ machine, B, K, L, dc, search: results, encoding: enc }, null, 2) + '\n');
}

await main();
