// Latency of serving a history request: fold-in of one new user (lib/cf/foldin.ts), the
// one-shot path (foldInUsers: builds and propagates the whole training graph on every call) vs a
// FoldInContext built once (only the per-user fit per call). Histories of 5, 20 and 100 distinct
// items drawn uniformly (seeded); every request is one call with one history, as the Recommender
// makes them. Every path's vectors are compared bit for bit.
//
//   npx tsc -p . && node dist/bench/foldin.js [--requests 5] [--baseline old/tokenrec.node] <modelDir>...
//
// A model directory needs a cf stage (lib/cf/store.ts). --baseline loads another build of the
// addon (e.g. the commit before this change) and times its cfFoldIn too, as "before".
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describeMachine, takeOption } from './machine.js';
import { FoldInContext, foldInUsers, type FoldInModel } from '../lib/cf/foldin.js';
import { FOLD_IN_DEFAULTS } from '../lib/cf/config.js';
import type { CfFoldInFn } from '../lib/cf/native.js';
import { loadCfStage } from '../lib/cf/store.js';
import { seededRandom } from '../lib/data/split.js';
import { toCsr } from '../lib/data/types.js';

const args = process.argv.slice(2);
const requests = Number(takeOption(args, '--requests') ?? 5);
const baselinePath = takeOption(args, '--baseline');
if (args.length < 1 || !(requests >= 1)) {
  console.error('usage: node dist/bench/foldin.js [--requests 5] [--baseline path/to/tokenrec.node] <modelDir>...');
  process.exit(2);
}
const baseline = baselinePath ? (createRequire(import.meta.url)(resolve(baselinePath)) as { cfFoldIn: CfFoldInFn }).cfFoldIn : undefined;
const LENGTHS = [5, 20, 100];
const median = (t: number[]) => [...t].sort((a, b) => a - b)[t.length >> 1];
const same = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

console.log(describeMachine());
console.log(`fold-in config: ${JSON.stringify(FOLD_IN_DEFAULTS)}; ${requests} requests per length, median ms per request\n`);
const rows: string[] = [];
let allSame = true;
for (const dir of args) {
  const cf = loadCfStage(dir);
  const m: FoldInModel = { ...cf, layers: cf.layers };
  const t0 = performance.now();
  const ctx = await FoldInContext.create(m);
  const createMs = performance.now() - t0;
  console.log(`${dir}: ${cf.numUsers} users, ${cf.numItems} items, ${cf.trainIdx.length} training interactions, dim ${cf.dim}, ${cf.layers} layers; context built in ${createMs.toFixed(0)} ms`);
  const rnd = seededRandom(7);
  for (const len of LENGTHS) {
    const hs: Int32Array[] = [];
    for (let r = 0; r < requests; r++) {
      const pick = new Set<number>();
      while (pick.size < Math.min(len, cf.numItems)) pick.add(Math.floor(rnd() * cf.numItems));
      hs.push(Int32Array.from(pick));
    }
    const tOne: number[] = [], tCtx: number[] = [], tBase: number[] = [];
    for (const h of hs) {
      let t = performance.now();
      const a = await foldInUsers(m, [h]);
      tOne.push(performance.now() - t);
      t = performance.now();
      const b = await ctx.foldIn([h]);
      tCtx.push(performance.now() - t);
      let ok = same(a.final, b.final) && same(a.ego, b.ego);
      if (baseline) {
        const ego = new Float32Array((cf.numUsers + cf.numItems) * cf.dim);
        ego.set(cf.userEgo, 0);
        ego.set(cf.itemEgo, cf.numUsers * cf.dim);
        const hist = toCsr([h]);
        const c = FOLD_IN_DEFAULTS;
        t = performance.now();
        const o = await baseline({ numUsers: cf.numUsers, numItems: cf.numItems, trainPtr: cf.trainPtr, trainIdx: cf.trainIdx, ego, dim: cf.dim, layers: cf.layers, historyPtr: hist.ptr, historyIdx: hist.idx, steps: c.steps, negatives: c.negatives, lr: c.lr, lambda: c.l2, seed: c.seed });
        tBase.push(performance.now() - t);
        ok = ok && same(o.final, a.final) && same(o.ego, a.ego);
      }
      allSame &&= ok;
    }
    const before = baseline ? `${median(tBase).toFixed(1)} | ` : '';
    rows.push(`| ${dir} | ${len} | ${before}${median(tOne).toFixed(1)} | ${median(tCtx).toFixed(1)} |`);
    console.log(rows[rows.length - 1]);
  }
  ctx.dispose();
}
console.log(`\n| model | history | ${baseline ? 'before: one-shot (ms) | ' : ''}one-shot (ms) | context (ms) |`);
console.log(`|---|---|${baseline ? '---|' : ''}---|---|`);
for (const r of rows) console.log(r);
console.log(`\nvectors identical across paths: ${allSame ? 'yes' : 'NO'}`);
if (!allSame) process.exitCode = 1;
