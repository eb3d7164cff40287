// LLM4Rec's full-softmax loss (lib/llm/loss.ts ItemSoftmax), one training batch of B = 64
// outputs against every item: the library's path (two GEMMs around the native row-wise softmax
// cross-entropy, tokenrec/loss.h) against the same two GEMMs around plain TypeScript loops (the
// first version of the loss), in one run, at the item counts of LastFM, Beauty and Clothing.
// Both must give the same loss and gradient. For scale: a t5-tiny training step on the same
// batch takes about 75 ms at 1 thread (850 samples/s, docs/RESULTS.md).
//
//   npm run build && node dist/bench/softmax-loss.js [--threads 1] [--out bench/results/softmax-loss.json]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadavg } from 'node:os';
import { ItemSoftmax, unitRowsInPlace } from '../lib/llm/loss.js';
import { sgemm } from '../lib/nn/gemm.js';
import { seededRandom } from '../lib/data/split.js';
import { packageRoot, setNumThreads } from '../lib/native/addon.js';
import { describeMachine, machineInfo, takeOption, timeMs } from './machine.js';

const args = process.argv.slice(2);
const threads = Number(takeOption(args, '--threads') ?? 1);
const outPath = takeOption(args, '--out') ?? join(packageRoot(), 'bench', 'results', 'softmax-loss.json');
setNumThreads(threads);

/** The TypeScript baseline: softmax and its gradient written as plain loops. unit: (N * d) unit rows. */
function typescriptLoss(unit: Float32Array, N: number, d: number, temperature: number, z: Float32Array, targets: number[]): { loss: number; grad: Float32Array } {
  const B = targets.length;
  const q = z.slice();
  const norms = unitRowsInPlace(q, d);
  const logits = new Float32Array(B * N);
  sgemm(false, true, B, N, d, 1 / temperature, q, unit, 0, logits);
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const row = logits.subarray(b * N, (b + 1) * N);
    let m = -Infinity;
    for (let i = 0; i < N; i++) if (row[i] > m) m = row[i];
    let s = 0;
    for (let i = 0; i < N; i++) s += Math.exp(row[i] - m);
    loss += m + Math.log(s) - row[targets[b]];
    for (let i = 0; i < N; i++) row[i] = Math.exp(row[i] - m) / s / B;
    row[targets[b]] -= 1 / B;
  }
  const g = new Float32Array(B * d);
  sgemm(false, false, B, d, N, 1 / temperature, logits, unit, 0, g);
  for (let b = 0; b < B; b++) {
    const gb = g.subarray(b * d, (b + 1) * d), u = q.subarray(b * d, (b + 1) * d);
    let gu = 0;
    for (let k = 0; k < d; k++) gu += gb[k] * u[k];
    for (let k = 0; k < d; k++) gb[k] = (gb[k] - gu * u[k]) / norms[b];
  }
  return { loss: loss / B, grad: g };
}

const B = 64, d = 64, temperature = 0.1;
console.log(`machine: ${describeMachine()}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; B = ${B}, d = ${d}, ${threads} thread(s)`);
const rows = [];
for (const [name, N] of [['LastFM', 3846], ['Beauty', 12101], ['Clothing', 23033]] as const) {
  const r = seededRandom(N);
  const items = Float32Array.from({ length: N * d }, () => r() - 0.5);
  const z = Float32Array.from({ length: B * d }, () => r() - 0.5);
  const targets = Array.from({ length: B }, () => Math.floor(r() * N));
  const sm = new ItemSoftmax(items, d, 'cosine', temperature);
  const unit = items.slice();
  unitRowsInPlace(unit, d); // once per run, as ItemSoftmax's constructor does
  const a = sm.loss(z, targets), b = typescriptLoss(unit, N, d, temperature, z, targets);
  let worst = 0;
  for (let i = 0; i < a.grad.length; i++) worst = Math.max(worst, Math.abs(a.grad[i] - b.grad[i]));
  if (Math.abs(a.loss - b.loss) > 1e-4 || worst > 1e-5) throw new Error(`${name}: the native and TypeScript losses disagree (loss ${a.loss} vs ${b.loss}, gradient ${worst})`);
  const nativeMs = await timeMs(() => sm.loss(z, targets), 15);
  const tsMs = await timeMs(() => typescriptLoss(unit, N, d, temperature, z, targets), 15);
  // Both GEMMs read the item matrix once: 2 * B * N * d multiply-adds each.
  const gflop = (4 * B * N * d) / 1e9;
  const row = { dataset: name, items: N, nativeMs, typescriptMs: tsMs, speedup: tsMs / nativeMs, nativeGflops: gflop / (nativeMs / 1e3), maxGradDiff: worst };
  rows.push(row);
  console.log(`${name.padEnd(8)} N = ${String(N).padStart(5)}: native ${nativeMs.toFixed(1)} ms, TypeScript loops ${tsMs.toFixed(1)} ms (${row.speedup.toFixed(1)}x); ${row.nativeGflops.toFixed(1)} GFLOP/s of GEMM work; max gradient difference ${worst.toExponential(1)}`);
}
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify({ machine: { ...machineInfo(), loadavg: loadavg() }, batch: B, dim: d, threads, rows }, null, 2) + '\n');
console.log(`-> ${outPath}`);
