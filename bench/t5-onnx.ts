// ONNX Runtime inference throughput of the exported T5 backbone (lib/t5/onnx-export.ts) for the
// t5-tiny, t5-mini and t5-small presets with random weights: encoder length 64, decoder length
// 20, batch 1 and 32. Baselines in the same run: the project's native C++ T5 forward on the same
// weights and inputs (same thread count), and ONNX Runtime on 1 intra-op thread (thread scaling).
//
//   npx tsc -p . && node dist/bench/t5-onnx.js [--threads 2] [--vocab 3000] [--seconds 3] [--spin off|on] [--native on|off]
//     [--presets t5-tiny,t5-mini,t5-small] [--out bench/results/t5-onnx.json]
//
// sequences/s = batch / (time of one run); tokens/s = batch * (encLen + decLen) / (time of one
// run), i.e. encoder plus decoder tokens through the whole backbone (one full forward each; no
// autoregressive generation). Timings on a shared machine are noisy.
import os from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { t5Config, t5TensorShapes, type T5Config, type T5PresetName } from '../lib/t5/config.js';
import { exportT5Onnx } from '../lib/t5/onnx-export.js';
import { OnnxSession } from '../lib/onnx/session.js';
import { runOnnxT5, type T5OnnxInputs } from '../lib/onnx/t5-runner.js';
import { describeMachine, machineInfo } from './machine.js';
import { T5Model } from '../lib/t5/model.js';
import { setNumThreads } from '../lib/native/addon.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const THREADS = Number(arg('threads', '2'));
const VOCAB = Number(arg('vocab', '3000'));
const SECONDS = Number(arg('seconds', '3'));
const PRESETS = arg('presets', 't5-tiny,t5-mini,t5-small').split(',') as T5PresetName[];
const OUT = arg('out', 'bench/results/t5-onnx.json');
// The project's native T5 forward (lib/t5/model.ts) on the same weights and inputs, as the baseline.
const NATIVE = arg('native', 'on') === 'on';
// Spin-waiting intra-op threads fight the other processes of a small shared machine; off by default here.
const SPIN = arg('spin', 'off') === 'on';
const ENC = 64;
const DEC = 20;
const BATCHES = [1, 32];

// Seeded normal samples (mulberry32 + Box-Muller), scaled like T5's initialisation.
function normalSampler(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function randomWeights(c: T5Config, seed: number): Record<string, Float32Array> {
  const normal = normalSampler(seed);
  const w: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(t5TensorShapes(c))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (name.endsWith('layer_norm.weight')) a.fill(1);
    else {
      const std = name === 'shared.weight' || name.includes('relative_attention_bias') ? 1 : 1 / Math.sqrt(shape[1]);
      for (let i = 0; i < n; i++) a[i] = normal() * std;
    }
    w[name] = a;
  }
  return w;
}

function inputs(batch: number, seed: number): T5OnnxInputs {
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (VOCAB - 1) + 1;
  return {
    inputIds: BigInt64Array.from({ length: batch * ENC }, () => BigInt(next())),
    attentionMask: new BigInt64Array(batch * ENC).fill(1n),
    decoderInputIds: BigInt64Array.from({ length: batch * DEC }, () => BigInt(next())),
    batch,
    encLen: ENC,
    decLen: DEC,
  };
}

// Wall time per run, and the process's CPU time per run (user + system, all threads): on a
// shared machine the wall time includes waiting for a core, the CPU time mostly does not.
interface Timing { runs: number; msPerRun: number; medianMs: number; cpuMsPerRun: number }
async function time(fn: () => Promise<unknown>): Promise<Timing> {
  await fn(); // warm-up (allocations, kernel selection)
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  while (times.length < 3 || (performance.now() - start < SECONDS * 1000 && times.length < 1000)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  const sorted = [...times].sort((a, b) => a - b);
  return {
    runs: times.length,
    msPerRun: times.reduce((a, b) => a + b, 0) / times.length,
    medianMs: sorted[Math.floor(sorted.length / 2)],
    cpuMsPerRun: (cpu.user + cpu.system) / 1000 / times.length,
  };
}

async function main(): Promise<void> {
  const info = machineInfo();
  const machine = { ...info, loadAvg1m: +os.loadavg()[0].toFixed(2), onnxruntime: OnnxSession.runtimeInfo().version, platform: `${os.platform()} ${os.arch()}` };
  console.log(`machine: ${describeMachine(info)}`);
  console.log(`load average (1 min): ${machine.loadAvg1m}; onnxruntime-node ${machine.onnxruntime}`);
  console.log(`provider: cpu; intra-op threads: ${THREADS} (baseline: 1), spinning ${SPIN ? 'on' : 'off'}; native baseline ${NATIVE ? `on, ${THREADS} threads` : 'off'}; vocab ${VOCAB}, encoder length ${ENC}, decoder length ${DEC}, ~${SECONDS}s per measurement`);
  const rows: Record<string, unknown>[] = [];
  for (const preset of PRESETS) {
    const config = t5Config(preset, VOCAB, { dropoutRate: 0 });
    const weights = randomWeights(config, 7);
    const params = Object.values(weights).reduce((a, w) => a + w.length, 0);
    let t0 = performance.now();
    const model = exportT5Onnx(config, weights);
    const exportMs = performance.now() - t0;
    const sessions: Record<number, OnnxSession> = {};
    for (const threads of [...new Set([1, THREADS])]) {
      t0 = performance.now();
      sessions[threads] = await OnnxSession.create(model, { intraOpNumThreads: threads, allowSpinning: SPIN });
      if (threads === THREADS) console.log(`${preset}: ${(params / 1e6).toFixed(2)}M parameters, model ${(model.byteLength / 2 ** 20).toFixed(1)} MiB, export ${exportMs.toFixed(0)} ms, session ${(performance.now() - t0).toFixed(0)} ms`);
    }
    let native: T5Model | null = null;
    if (NATIVE) {
      setNumThreads(THREADS);
      native = T5Model.fromTensors(config, weights);
    }
    for (const batch of BATCHES) {
      const inp = inputs(batch, 11 + batch);
      const main = await time(() => runOnnxT5(sessions[THREADS], inp));
      const base = THREADS === 1 ? main : await time(() => runOnnxT5(sessions[1], inp));
      let nat: Timing | null = null;
      if (native) {
        const n = native;
        const b = {
          inputIds: Int32Array.from(inp.inputIds as BigInt64Array, Number),
          attentionMask: Int32Array.from(inp.attentionMask as BigInt64Array, Number),
          decoderInputIds: Int32Array.from(inp.decoderInputIds as BigInt64Array, Number),
          batchSize: batch,
        };
        nat = await time(() => n.forward(b));
      }
      const row = {
        preset, params, batch, encLen: ENC, decLen: DEC, threads: THREADS,
        msPerRun: +main.msPerRun.toFixed(2), medianMs: +main.medianMs.toFixed(2), runs: main.runs, cpuMsPerRun: +main.cpuMsPerRun.toFixed(2),
        sequencesPerSec: +((batch * 1000) / main.msPerRun).toFixed(1),
        tokensPerSec: +((batch * (ENC + DEC) * 1000) / main.msPerRun).toFixed(0),
        baselineMsPerRun1Thread: +base.msPerRun.toFixed(2),
        baselineCpuMsPerRun1Thread: +base.cpuMsPerRun.toFixed(2),
        speedupVs1Thread: +(base.msPerRun / main.msPerRun).toFixed(2),
        nativeMsPerRun: nat ? +nat.msPerRun.toFixed(2) : null,
        nativeCpuMsPerRun: nat ? +nat.cpuMsPerRun.toFixed(2) : null,
        // > 1: ONNX Runtime is faster than the native forward (wall time).
        onnxSpeedupVsNative: nat ? +(nat.msPerRun / main.msPerRun).toFixed(2) : null,
      };
      rows.push(row);
      console.log(`  batch ${String(batch).padStart(2)}: ${row.msPerRun} ms/run (median ${row.medianMs}, ${row.runs} runs, CPU ${row.cpuMsPerRun} ms), ${row.sequencesPerSec} seq/s, ${row.tokensPerSec} tok/s; 1 thread ${row.baselineMsPerRun1Thread} ms (x${row.speedupVs1Thread}); native ${row.nativeMsPerRun ?? '-'} ms (CPU ${row.nativeCpuMsPerRun ?? '-'} ms)`);
    }
    native?.dispose();
    for (const s of Object.values(sessions)) await s.dispose();
  }
  console.log(`\n| preset | params | batch | ORT ms/run | sequences/s | tokens/s | ORT CPU ms/run | ORT 1-thread ms/run | native ms/run | native CPU ms/run | ORT vs native |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.preset} | ${((r.params as number) / 1e6).toFixed(2)}M | ${r.batch} | ${r.msPerRun} | ${r.sequencesPerSec} | ${r.tokensPerSec} | ${r.cpuMsPerRun} | ${r.baselineMsPerRun1Thread} | ${r.nativeMsPerRun ?? '-'} | ${r.nativeCpuMsPerRun ?? '-'} | ${r.onnxSpeedupVsNative ?? '-'}x |`);
  }
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify({ bench: 't5-onnx', date: new Date().toISOString(), machine, provider: 'cpu', threads: THREADS, allowSpinning: SPIN, nativeBaseline: NATIVE, vocab: VOCAB, encLen: ENC, decLen: DEC, rows }, null, 2) + '\n');
  console.log(`results: ${OUT}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
