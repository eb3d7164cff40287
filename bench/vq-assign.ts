// The collision-free code assignment (lib/tokenizer/assign.ts) on a trained model directory,
// without retraining and without writing anything: loads its CF vectors and trained tokenizers,
// encodes every id to its nearest-codeword tuple (as the tokenizer alone gives), assigns the unique
// table, and prints collisions before and after, the ids moved, their extra quantisation cost and
// the seconds the assignment took. Users the CF stage marks unseen keep their nearest codes, as in
// training. Useful for model directories trained before unique codes existed.
//
//   npx tsc -p . && node dist/bench/vq-assign.js [--out file.json] <model dir> ...
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadCfStage } from '../lib/cf/store.js';
import { Tokenizer } from '../lib/tokenizer/model.js';
import { TOKENIZER_FILES } from '../lib/tokenizer/stage.js';
import { assignUniqueCodes, tokenizerDistances } from '../lib/tokenizer/assign.js';
import { collisionStats } from '../lib/tokenizer/stats.js';
import { loadTokenizerCodes } from '../lib/tokenizer/codes.js';
import { describeMachine, machineInfo } from './machine.js';

const args = process.argv.slice(2);
let outFile: string | undefined;
const dirs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out') outFile = args[++i];
  else dirs.push(args[i]);
}
if (!dirs.length) {
  console.error('usage: node dist/bench/vq-assign.js [--out file.json] <model dir> ...');
  process.exit(2);
}
const machine = machineInfo();
console.log(`machine: ${describeMachine(machine)}`);
const pct = (x: number) => (100 * x).toFixed(1);
const rows: Record<string, unknown>[] = [];
console.log('\n| model | entity | ids | nearest codes: unique ids % | table: unique ids % | ids moved | codes changed per moved id | quantisation cost of moved ids | assignment s | equals the stored table |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const dir of dirs) {
  const cf = loadCfStage(dir);
  const stored = loadTokenizerCodes(dir);
  for (const entity of ['user', 'item'] as const) {
    const tok = Tokenizer.load(join(dir, TOKENIZER_FILES[entity]));
    try {
      const vectors = entity === 'user' ? cf.userVectors : cf.itemVectors;
      const { K, L } = tok.config;
      const nearest = await tok.encode(vectors);
      const eligible = entity === 'user' ? Uint8Array.from(cf.userSource, (s) => (s ? 0 : 1)) : undefined;
      const cb = tok.codebooks();
      const t0 = performance.now();
      const r = await assignUniqueCodes(nearest, K, L, tokenizerDistances(tok, vectors, cb), { eligible });
      const seconds = (performance.now() - t0) / 1000;
      const before = collisionStats(nearest, K), after = collisionStats(r.codes, K);
      // A directory trained with unique codes must hold exactly this table; an older one the nearest codes.
      const table = (entity === 'user' ? stored.users : stored.items).codes;
      const same = (a: Int32Array) => a.length === table.length && a.every((c, i) => c === table[i]);
      const matches = same(r.codes) ? 'yes' : same(nearest) ? 'no (nearest codes: trained before unique codes)' : 'NO';
      rows.push({ dir, entity, nearest: before, table: after, assignment: r.stats, seconds, matchesStored: matches });
      console.log(
        `| ${dir} | ${entity} | ${before.ids} | ${pct(before.uniqueFraction)} | ${pct(after.uniqueFraction)} | ${r.stats.reassigned} | ` +
          `${r.stats.meanCodesChanged.toFixed(2)} | +${pct(r.stats.meanCostIncrease)} % | ${seconds.toFixed(2)} | ${matches} |`,
      );
    } finally {
      tok.dispose();
    }
  }
}
if (outFile) {
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({ machine, rows }, null, 2) + '\n');
}
