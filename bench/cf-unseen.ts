// Unseen users (PAPER.md §1.5): the least-active users are held out of training; their vectors
// come from fold-in (item vectors frozen, lib/cf/foldin.ts). Compared with the full-retrain path
// (the same users trained as ordinary users) and most-popular, on the same test targets.
//
//   npx tsc -p . && node dist/bench/cf-unseen.js [--unseen 0.05] [--epochs N] [--model lightgcn|mf] <data>
import { takeOption } from './machine.js';
import { evaluatePopularity } from '../lib/baselines/pop.js';
import type { CfModelKind } from '../lib/cf/config.js';
import { withUsersIncluded } from '../lib/cf/foldin.js';
import { evaluateCf, trainCf } from '../lib/cf/train.js';
import { loadDataset } from '../lib/data/load.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { evaluateVectors, usersWithTarget } from '../lib/eval/evaluate.js';
import { formatMetrics } from '../lib/eval/metrics.js';
import { backendInfo } from '../lib/native/addon.js';

const args = process.argv.slice(2);
const opt = (name: string) => takeOption(args, name);
const unseen = Number(opt('--unseen') ?? 0.05);
const epochs = opt('--epochs');
const model = (opt('--model') ?? 'lightgcn') as CfModelKind;
if (args.length !== 1) {
  console.error('usage: node dist/bench/cf-unseen.js [--unseen 0.05] [--epochs N] [--model lightgcn|mf] <data>');
  process.exit(2);
}
const info = backendInfo();
const split = splitLeaveOneOut(loadDataset(args[0]), { unseenFraction: unseen });
const users = usersWithTarget(split, 'test', 'unseen');
console.log(`${args[0]}: ${split.unseenUsers.length} unseen users (${users.length} with a test target); ${info.threads} threads`);

const cfg = { model, epochs: epochs ? Number(epochs) : undefined, backend: 'cpu' as const };
let t0 = performance.now();
const folded = await trainCf(split, cfg);
const foldSeconds = (performance.now() - t0) / 1000;
const m = await evaluateCf(folded, split, 'test');
console.log(`\n${model} trained without them, fold-in vectors (${foldSeconds.toFixed(0)} s incl. training):`);
console.log(formatMetrics(m.unseen!));
console.log(`(users seen in training: HR@20 ${m.seen.hr[20].toFixed(4)})`);

t0 = performance.now();
const full = withUsersIncluded(split);
const retrained = await trainCf(full, cfg);
const r = await evaluateVectors({ split, which: 'test', users, userVectors: retrained.userVectors, itemVectors: retrained.itemVectors, dim: retrained.dim });
console.log(`\nfull retrain with them as training users (${((performance.now() - t0) / 1000).toFixed(0)} s):`);
console.log(formatMetrics(r.metrics));

const pop = await evaluatePopularity(split, 'test', { users });
console.log('\nmost-popular on the same users:');
console.log(formatMetrics(pop.metrics));
