// Tokenizer quality: for each input, trains the user and item MQ-Tokenizers and reports the
// reconstruction error (train and held-out), utilisation and perplexity of every codebook, the
// number of distinct K-tuples and the collisions. Inputs: model directories holding a CF stage
// (`tokenrec train <data> --out <dir> --stage cf`), or `synthetic:<users>x<items>` for seeded
// clustered vectors. Prints a Markdown table; raw results in bench/results/vq-quality.json.
//   npm run build && node dist/bench/vq-quality.js [--epochs N] [--K 3] [--L 256] [--lr X] [--decorrelate X] [--no-unique-codes] [--out file.json] <dir|synthetic:UxI> ...
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { runTokenizerStage } from '../lib/tokenizer/stage.js';
import { trainTokenizer, type TokenizerStats } from '../lib/tokenizer/train.js';
import { clusteredVectors } from '../lib/tokenizer/synthetic.js';
import type { TokenizerConfigInput } from '../lib/tokenizer/config.js';
import { describeMachine, machineInfo } from './machine.js';

const args = process.argv.slice(2);
const input: TokenizerConfigInput = {};
const inputs: string[] = [];
let outFile = join('bench', 'results', 'vq-quality.json');
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--epochs') input.epochs = Number(args[++i]);
  else if (a === '--K') input.K = Number(args[++i]);
  else if (a === '--L') input.L = Number(args[++i]);
  else if (a === '--mask') input.maskRate = Number(args[++i]);
  else if (a === '--seed') input.seed = Number(args[++i]);
  else if (a === '--lr') input.lr = Number(args[++i]);
  else if (a === '--decorrelate') input.decorrelation = Number(args[++i]);
  else if (a === '--no-unique-codes') input.uniqueCodes = false;
  else if (a === '--out') outFile = args[++i];
  else inputs.push(a);
}
if (!inputs.length) {
  console.error('usage: node dist/bench/vq-quality.js [--epochs N] [--K 3] [--L 256] <model dir with a cf stage | synthetic:UxI> ...');
  process.exit(2);
}
const machine = machineInfo();
console.log(`machine: ${describeMachine(machine)}`);
const rows: { input: string; entity: string; stats: TokenizerStats }[] = [];
for (const src of inputs) {
  const t0 = performance.now();
  if (src.startsWith('synthetic')) {
    const [u, it] = (src.split(':')[1] ?? '1090x3646').split('x').map(Number);
    for (const [entity, n, seed] of [['user', u, 1], ['item', it, 2]] as const) {
      const v = clusteredVectors({ n, seed });
      const r = await trainTokenizer(v, 64, input);
      rows.push({ input: src, entity, stats: r.stats });
      r.tokenizer.dispose();
    }
  } else {
    const r = await runTokenizerStage(src, { ...input, force: true }, {
      onProgress: (e) => {
        if (e.phase === 'epoch' && (e.epoch % 20 === 0 || e.epoch === e.epochs)) {
          process.stderr.write(`${basename(src)} ${e.entity} epoch ${e.epoch}/${e.epochs} recon ${e.recon.toExponential(3)} util ${e.utilisation.map((x) => x.toFixed(2)).join('/')} (${e.seconds.toFixed(1)} s)\n`);
        }
      },
    });
    const m = r.metrics as { user: TokenizerStats; item: TokenizerStats };
    rows.push({ input: src, entity: 'user', stats: m.user }, { input: src, entity: 'item', stats: m.item });
  }
  process.stderr.write(`${src}: ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
}
const pct = (x: number) => (100 * x).toFixed(1);
console.log('\n| input | entity | ids | recon rel. train / held-out | codebook use % (perplexity) | distinct K-tuples | unique ids % | shared tuples (ids) | nearest codes: unique ids % | ids moved (cost +%) | s/epoch |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const { input: src, entity, stats: s } of rows) {
  const c = s.collisions;
  console.log(
    `| ${basename(src)} | ${entity} | ${s.ids} | ${s.reconTrain.relative.toFixed(3)} / ${s.reconHeldOut ? s.reconHeldOut.relative.toFixed(3) : '-'} | ` +
      `${s.codebooks.map((b) => `${pct(b.utilisation)} (${b.perplexity.toFixed(0)})`).join(', ')} | ${c.distinctTuples} | ${pct(c.uniqueFraction)} | ` +
      `${c.collisionGroups} (${c.collidingIds}) | ${pct(s.nearestCollisions.uniqueFraction)} | ` +
      `${s.assignment ? `${s.assignment.reassigned} (+${pct(s.assignment.meanCostIncrease)})` : '-'} | ${s.secondsPerEpoch.toFixed(2)} |`,
  );
}
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify({ machine, config: input, rows }, null, 2) + '\n');
