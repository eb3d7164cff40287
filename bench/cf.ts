// Stage-0 benchmark on real data: most-popular, MF and LightGCN trained with the library's
// defaults (or the options below), test HR/NDCG@10/20/30, seconds per epoch, epochs to the best
// validation point. Prints a Markdown table and writes the raw results as JSON.
//
//   npx tsc -p . && node dist/bench/cf.js [--epochs N] [--batch-size B] [--lr X] [--models lightgcn,mf]
//       [--seed S] [--patience P] [--eval-every E] [--json out.json] <data file> [<data file> ...]
import { takeOption } from './machine.js';
import { writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { evaluatePopularity } from '../lib/baselines/pop.js';
import { resolveCfConfig, type CfModelKind } from '../lib/cf/config.js';
import { evaluateCf, trainCf } from '../lib/cf/train.js';
import { loadDataset } from '../lib/data/load.js';
import { splitLeaveOneOut, trainingInteractions } from '../lib/data/split.js';
import type { Metrics } from '../lib/eval/metrics.js';
import { backendInfo } from '../lib/native/addon.js';

interface Row {
  dataset: string;
  model: string;
  test: Metrics;
  secondsPerEpoch?: number;
  bestEpoch?: number;
  epochsRun?: number;
  totalSeconds: number;
  config?: unknown;
}

const args = process.argv.slice(2);
const opt = (name: string) => takeOption(args, name);
const epochs = opt('--epochs');
const batchSize = opt('--batch-size');
const lr = opt('--lr');
const evalEvery = opt('--eval-every');
const seed = opt('--seed');
const patience = opt('--patience');
const models = (opt('--models') ?? 'lightgcn,mf').split(',') as CfModelKind[];
const jsonOut = opt('--json');
if (args.length === 0) {
  console.error('usage: node dist/bench/cf.js [--epochs N] [--batch-size B] [--lr X] [--models lightgcn,mf] [--seed S] [--patience P] [--eval-every E] [--json out.json] <data> ...');
  process.exit(2);
}

const info = backendInfo();
console.error(`backend: ${info.cpuIsa}, ${info.threads} threads, cuda ${info.cuda.available ? info.cuda.device : 'no'}`);
const rows: Row[] = [];
for (const path of args) {
  const ds = loadDataset(path);
  const name = ds.name === 'user_sequence' || ds.name.startsWith('ml-') ? basename(dirname(path)) : ds.name;
  const split = splitLeaveOneOut(ds);
  console.error(`${name}: ${split.numUsers} users, ${split.numItems} items, ${trainingInteractions(split)} training interactions`);
  let t0 = performance.now();
  const pop = await evaluatePopularity(split, 'test', { backend: 'cpu' });
  rows.push({ dataset: name, model: 'most-popular', test: pop.metrics, totalSeconds: (performance.now() - t0) / 1000 });
  for (const model of models) {
    const config = resolveCfConfig({
      model,
      epochs: epochs ? Number(epochs) : undefined,
      batchSize: batchSize ? Number(batchSize) : undefined,
      lr: lr ? Number(lr) : undefined,
      evalEvery: evalEvery ? Number(evalEvery) : undefined,
      seed: seed ? Number(seed) : undefined,
      patience: patience ? Number(patience) : undefined,
    });
    t0 = performance.now();
    const r = await trainCf(split, {
      ...config,
      backend: 'cpu',
      onProgress: (e) => {
        if (e.phase === 'eval') console.error(`  ${name} ${model} epoch ${e.epoch}: valid NDCG@20 ${e.validNdcg20.toFixed(4)} (best epoch ${e.bestEpoch})`);
      },
    });
    const test = (await evaluateCf(r, split, 'test', { backend: 'cpu' })).seen;
    rows.push({ dataset: name, model, test, secondsPerEpoch: r.secondsPerEpoch, bestEpoch: r.bestEpoch, epochsRun: r.epochsRun, totalSeconds: (performance.now() - t0) / 1000, config: r.config });
    console.error(`  ${name} ${model}: test HR@20 ${test.hr[20].toFixed(4)}, ${r.secondsPerEpoch.toFixed(2)} s/epoch, best epoch ${r.bestEpoch} of ${r.epochsRun}`);
  }
}

const f = (x: number) => x.toFixed(4);
console.log(`threads: ${info.threads} (${info.cpuIsa}); timings are wall-clock on a shared machine`);
console.log('| dataset | model | HR@10 | NDCG@10 | HR@20 | NDCG@20 | HR@30 | NDCG@30 | s/epoch | best epoch / run | total s |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const m = r.test;
  console.log(
    `| ${r.dataset} | ${r.model} | ${f(m.hr[10])} | ${f(m.ndcg[10])} | ${f(m.hr[20])} | ${f(m.ndcg[20])} | ${f(m.hr[30])} | ${f(m.ndcg[30])} | ` +
      `${r.secondsPerEpoch?.toFixed(2) ?? '-'} | ${r.bestEpoch !== undefined ? `${r.bestEpoch} / ${r.epochsRun}` : '-'} | ${r.totalSeconds.toFixed(1)} |`,
  );
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ machine: info, rows }, null, 2) + '\n');
