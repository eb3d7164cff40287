// T5 backbone training throughput: forward + backward (and the AdamW step, separately) for each
// preset, in tokens per second, with the matrix-multiply FLOP rate achieved against the CPU's
// peak; and the GEMM alone (OpenBLAS when the build found it, and the built-in kernel) on the
// backbone's matrix shapes.
// Run: npm run build && node dist/bench/t5-train.js [--quick] [--threads N]
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { addon, setNumThreads } from '../lib/native/addon.js';
import { t5Config, type T5Config, type T5PresetName } from '../lib/t5/config.js';
import { T5Model } from '../lib/t5/model.js';
import { describeMachine, machineInfo } from './machine.js';

const quick = process.argv.includes('--quick');
const ti = process.argv.indexOf('--threads');
const threads = setNumThreads(ti > 0 ? Number(process.argv[ti + 1]) : 2);
const machine = machineInfo();
console.log(`machine: ${describeMachine(machine)}`);
const mhz = Number(/@ (\d+) MHz/.exec(machine.cpu)?.[1] ?? 0) || 2450;
// AVX2 + FMA, two 256-bit FMA pipes per core: 2 pipes x 8 lanes x 2 flop = 32 flop / cycle / core.
const peakGflops = threads * 32 * (mhz / 1000);
console.log(`threads ${threads}; peak FP32 ≈ ${threads} x 32 flop/cycle x ${(mhz / 1000).toFixed(2)} GHz = ${peakGflops.toFixed(0)} GFLOP/s`);

// Matrix-multiply FLOPs of one forward (attention's score and context products included).
function forwardFlops(c: T5Config, B: number, S: number, T: number): number {
  const I = c.numHeads * c.dKv, d = c.dModel, F = c.dFf, Ne = B * S, Nd = B * T;
  const enc = Ne * (2 * d * 3 * I + 2 * I * d + 4 * d * F) + 4 * B * c.numHeads * S * S * c.dKv;
  const dec =
    Nd * (2 * d * 3 * I + 2 * I * d + 2 * d * I + 2 * I * d + 4 * d * F) + Ne * 2 * d * 2 * I +
    4 * B * c.numHeads * T * T * c.dKv + 4 * B * c.numHeads * T * S * c.dKv;
  return c.numEncoderLayers * enc + c.numDecoderLayers * dec;
}

type BenchSgemm = (o: { m: number; n: number; k: number; iters: number; builtin: boolean }) => Promise<{ seconds: number; cpuSeconds: number; gflops: number; backend: string }>;
const benchSgemm = addon().benchSgemm as BenchSgemm;

// GEMM alone, on t5-small's shapes for B*S = 1024 rows: projections (d -> 3I), FF in (d -> F), FF out (F -> d).
const gemmRows = [];
for (const [m, n, k, what] of [
  [1024, 1536, 512, 'QKV projection'],
  [1024, 2048, 512, 'FF in'],
  [1024, 512, 2048, 'FF out'],
  [320, 512, 512, 'decoder o (B*T=320)'],
] as [number, number, number, string][]) {
  for (const builtin of [false, true]) {
    const iters = quick ? 2 : Math.max(2, Math.round(4e9 / (2 * m * n * k)));
    const r = await benchSgemm({ m, n, k, iters, builtin });
    // Per CPU-second: the rate per core while the threads actually ran, times the thread count
    // (what the kernel does with the cores to itself; the wall rate depends on the machine's load).
    const cpuGflops = (2 * m * n * k * iters) / (r.cpuSeconds / threads) / 1e9;
    gemmRows.push({ what, m, n, k, backend: r.backend, gflops: r.gflops, ofPeak: r.gflops / peakGflops, cpuGflops, cpuOfPeak: cpuGflops / peakGflops });
    console.log(
      `sgemm ${what} (${m}x${k})·(${k}x${n}) ${r.backend}: ${r.gflops.toFixed(1)} GFLOP/s wall (${((100 * r.gflops) / peakGflops).toFixed(0)}% of peak); ` +
        `${cpuGflops.toFixed(1)} GFLOP/s per CPU time x ${threads} threads (${((100 * cpuGflops) / peakGflops).toFixed(0)}% of peak)`,
    );
    if (r.backend === 'builtin' && !builtin) break; // no BLAS in this build: the two are the same
  }
}

// The paper's setting: prompts of up to 64 tokens, 20 decoder queries.
const presets: { preset: T5PresetName; B: number; S: number; T: number; vocab: number }[] = [
  { preset: 't5-tiny', B: 32, S: 64, T: 20, vocab: 4000 },
  { preset: 't5-mini', B: 32, S: 64, T: 20, vocab: 8000 },
  { preset: 't5-small', B: 16, S: 64, T: 20, vocab: 32100 + 2 * 3 * 256 },
];
const rows = [];
for (const p of presets) {
  const cfg = t5Config(p.preset, p.vocab);
  const model = T5Model.create(cfg, 1);
  const r = (n: number) => Int32Array.from({ length: n }, (_, i) => (i * 7919 + 13) % p.vocab);
  const batch = { inputIds: r(p.B * p.S), decoderInputIds: r(p.B * p.T), batchSize: p.B, train: true };
  const grad = new Float32Array(p.B * p.T * cfg.dModel).fill(1e-3);
  const steps = quick ? 2 : p.preset === 't5-small' ? 4 : 8;
  // warm-up
  await model.forward(batch);
  await model.backward(grad);
  let fwdMs = 0, bwdMs = 0, stepMs = 0;
  const cpu0 = process.cpuUsage();
  let fwdBwdWall = 0;
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    await model.forward(batch);
    const t1 = performance.now();
    await model.backward(grad);
    const t2 = performance.now();
    await model.step({ lr: 1e-4, weightDecay: 0.01, clipNorm: 1 });
    const t3 = performance.now();
    fwdMs += t1 - t0;
    bwdMs += t2 - t1;
    stepMs += t3 - t2;
    fwdBwdWall += t3 - t0;
  }
  // CPU time of the whole process (all threads) per step: on a shared machine the wall time
  // includes waiting for a core; cpuMs / threads is what the step would take with the cores to itself.
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
  const busyFraction = (cpuMsPerStep * steps) / fwdBwdWall / threads;
  fwdMs /= steps;
  bwdMs /= steps;
  stepMs /= steps;
  const tokens = p.B * (p.S + p.T);
  const flops = 3 * forwardFlops(cfg, p.B, p.S, p.T); // backward ≈ 2 x forward
  const gflops = flops / ((fwdMs + bwdMs) / 1000) / 1e9;
  const row = {
    preset: p.preset, params: model.numParameters(), vocab: p.vocab, B: p.B, S: p.S, T: p.T, fwdMs, bwdMs, stepMs,
    tokensPerS: tokens / ((fwdMs + bwdMs) / 1000), tokensPerSWithStep: tokens / ((fwdMs + bwdMs + stepMs) / 1000),
    gflops, ofPeak: gflops / peakGflops, cpuMsPerStep, busyFraction,
    tokensPerSIfCoresFree: tokens / ((cpuMsPerStep / threads) / 1000),
  };
  rows.push(row);
  console.log(
    `${p.preset} (${(row.params / 1e6).toFixed(2)}M params) B=${p.B} S=${p.S} T=${p.T}: forward ${fwdMs.toFixed(0)} ms, backward ${bwdMs.toFixed(0)} ms, AdamW ${stepMs.toFixed(0)} ms; ` +
      `${Math.round(row.tokensPerS)} tokens/s fwd+bwd (${Math.round(row.tokensPerSWithStep)} with the step); ${gflops.toFixed(1)} GFLOP/s = ${(100 * row.ofPeak).toFixed(0)}% of peak; ` +
      `CPU ${cpuMsPerStep.toFixed(0)} ms/step (cores busy ${(100 * busyFraction).toFixed(0)}% of the wall time => ${Math.round(row.tokensPerSIfCoresFree)} tokens/s with the cores to itself, step included)`,
  );
  model.dispose();
}
mkdirSync(join('bench', 'results'), { recursive: true });
// TOKENREC_GEMM=builtin runs (the built-in GEMM for the model too) go to their own file.
const file = process.env.TOKENREC_GEMM === 'builtin' ? 't5-train-builtin.json' : 't5-train.json';
writeFileSync(join('bench', 'results', file), JSON.stringify({ machine, threads, peakGflops, gemm: gemmRows, rows }, null, 2) + '\n');
