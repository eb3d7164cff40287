// Full-ranking evaluation benchmark: the native kernel (exact scores, exclusion, tie counting)
// against a naive TypeScript loop doing the same work, at the sizes of the paper's datasets.
// Run: npm run build && node dist/bench/rank.js [--quick]
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { rankTargets } from '../lib/eval/rank.js';
import { toCsr } from '../lib/data/types.js';
import { describeMachine, machineInfo, timeMs } from './machine.js';
import { seededRandom } from '../lib/data/split.js';

function naiveRanks(U: Float32Array, I: Float32Array, D: number, targets: Int32Array, excl: number[][]): Int32Array {
  const B = targets.length, N = I.length / D;
  const out = new Int32Array(B);
  const scores = new Float32Array(N);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += U[b * D + d] * I[j * D + d];
      scores[j] = s;
    }
    const t = scores[targets[b]];
    for (const e of excl[b]) scores[e] = -Infinity;
    let r = 0;
    for (let j = 0; j < N; j++) if (scores[j] >= t) r++;
    out[b] = r;
  }
  return out;
}

const quick = process.argv.includes('--quick');
const cases = quick
  ? [{ name: 'LastFM-size', B: 1090, N: 3646 }]
  : [
      { name: 'LastFM-size', B: 1090, N: 3646 },
      { name: 'ML1M-size', B: 6040, N: 3416 },
      { name: 'Beauty-size', B: 22363, N: 12101 },
      { name: 'Clothing-size', B: 39387, N: 23033 },
    ];
const D = 64;
const NAIVE_USERS = 300; // the naive loop runs on a subset of users; its rate is per user
const machine = machineInfo();
console.log(`machine: ${describeMachine(machine)}`);
const rows = [];
for (const c of cases) {
  const r = seededRandom(7);
  const U = Float32Array.from({ length: c.B * D }, () => r() * 2 - 1);
  const I = Float32Array.from({ length: c.N * D }, () => r() * 2 - 1);
  const targets = Int32Array.from({ length: c.B }, () => Math.floor(r() * c.N));
  const excl = Array.from({ length: c.B }, (_, b) => Array.from({ length: 8 }, () => Math.floor(r() * c.N)).filter((j) => j !== targets[b]));
  const exclude = toCsr(excl);
  const nativeMs = await timeMs(() => rankTargets({ users: U, items: I, dim: D, targets, exclude, backend: 'cpu' }), quick ? 1 : 3);
  const nb = Math.min(NAIVE_USERS, c.B);
  const naiveMs = await timeMs(() => naiveRanks(U.subarray(0, nb * D), I, D, targets.subarray(0, nb), excl), 1);
  // Same answers on the subset.
  const got = await rankTargets({ users: U.subarray(0, nb * D), items: I, dim: D, targets: targets.subarray(0, nb), exclude: toCsr(excl.slice(0, nb)), backend: 'cpu' });
  const want = naiveRanks(U.subarray(0, nb * D), I, D, targets.subarray(0, nb), excl);
  let agree = 0;
  for (let i = 0; i < nb; i++) agree += Math.abs(got[i] - want[i]) <= 1 ? 1 : 0;
  const nativeUsersPerS = c.B / (nativeMs / 1000);
  const naiveUsersPerS = nb / (naiveMs / 1000);
  const gflops = (2 * c.B * c.N * D) / (nativeMs / 1000) / 1e9;
  rows.push({ ...c, D, nativeMs, nativeUsersPerS, naiveUsersPerS, speedup: nativeUsersPerS / naiveUsersPerS, gflops, agree: agree / nb });
  console.log(`${c.name}: ${c.B} users x ${c.N} items, d=${D}: native ${nativeMs.toFixed(0)} ms (${Math.round(nativeUsersPerS)} users/s, ${gflops.toFixed(1)} GFLOP/s), naive TS ${Math.round(naiveUsersPerS)} users/s, speed-up x${(nativeUsersPerS / naiveUsersPerS).toFixed(1)}, agreement ${(100 * agree / nb).toFixed(1)}%`);
}
mkdirSync(join('bench', 'results'), { recursive: true });
writeFileSync(join('bench', 'results', 'rank.json'), JSON.stringify({ machine, rows }, null, 2) + '\n');
