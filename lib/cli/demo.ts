// `tokenrec demo [--out models/demo]`: the README's main job. Trains the whole pipeline (LightGCN,
// the two MQ-Tokenizers, LLM4Rec on a small T5) on the project's own seeded synthetic data, in a
// few minutes on 2 cores, then prints the test metrics next to the baselines and a few example
// recommendations (the synthetic data has planted user/item groups, so a good recommendation is
// an item of the user's own group).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { splitLeaveOneOut } from '../data/split.js';
import { syntheticDataset } from '../data/synthetic.js';
import { toCsr } from '../data/types.js';
import { requireManifest } from '../io/manifest.js';
import { loadLLMStage } from '../llm/stage.js';
import { loadTokenizerCodes } from '../tokenizer/codes.js';
import { loadCfStage } from '../cf/store.js';
import { embedUsers } from '../llm/train.js';
import { ItemIndex } from '../retrieval/topk.js';
import type { Metrics } from '../eval/metrics.js';

const SYNTH = { users: 600, items: 400, groups: 8, seed: 1 };
const SPEC = `synthetic:users=${SYNTH.users},items=${SYNTH.items},groups=${SYNTH.groups},seed=${SYNTH.seed}`;

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('train the whole pipeline on synthetic data (a few minutes) and show metrics and recommendations')
    .option('--out <dir>', 'model directory', 'models/demo')
    .option('--no-progress', 'no progress bars')
    .action(async (o: { out: string; progress: boolean }) => {
      const main = fileURLToPath(new URL('./main.js', import.meta.url));
      const args = [
        main, 'train', SPEC, '--out', o.out,
        '--L', '32', '--tok-epochs', '30',
        '--preset', 't5-tiny', '--llm-epochs', '10', '--history-cap', '20', '--queries', '4', '--samples-per-user', '4',
        ...(o.progress ? [] : ['--no-progress']),
      ];
      console.log(`tokenrec demo: training on ${SPEC} into ${o.out}\n`);
      const r = spawnSync(process.execPath, ['--no-warnings', ...args], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`training failed (exit status ${r.status})`);

      const m = requireManifest(o.out);
      const cfM = m.stages.cf.metrics as { test: Metrics; mostPopularTest: Metrics };
      const llmM = m.stages.llm.metrics as { test: { seen: Metrics }; testDot: Metrics };
      const row = (name: string, x: Metrics) => `${name.padEnd(28)} ${[10, 20].map((k) => `HR@${k} ${x.hr[k].toFixed(4)}  NDCG@${k} ${x.ndcg[k].toFixed(4)}`).join('   ')}`;
      console.log('\ntest split (leave-one-out, full ranking):');
      console.log(row('most popular', cfM.mostPopularTest));
      console.log(row('LightGCN', cfM.test));
      console.log(row('TokenRec (cosine, paper)', llmM.test.seen));
      console.log(row('TokenRec (dot, popularity)', llmM.testDot));

      // Example recommendations for three users, with the planted groups as ground truth.
      const ds = syntheticDataset(SYNTH);
      const split = splitLeaveOneOut(ds);
      const cf = loadCfStage(o.out);
      const codes = loadTokenizerCodes(o.out);
      const { model } = loadLLMStage(o.out);
      try {
        const users = Int32Array.from([0, 1, 2]);
        const data = { split, userCodes: codes.users, itemCodes: codes.items, itemVectors: cf.itemVectors, itemDim: cf.dim };
        const z = await embedUsers(model, data, users, 'test', 'seen', 20);
        const index = await ItemIndex.create(cf.itemVectors, { dim: cf.dim, similarity: 'cosine' });
        const exclude = toCsr(Array.from(users, (u) => Int32Array.from([...split.train[u], split.valid[u]])));
        const res = await index.search(z, 5, exclude);
        index.dispose();
        console.log('\nexample recommendations (item id [planted group]):');
        users.forEach((u, b) => {
          const tok = Array.from(codes.users.codes.subarray(u * codes.users.K, (u + 1) * codes.users.K)).map((c, k) => `<u${k + 1}-${c}>`).join('');
          const rec = Array.from(res.ids.subarray(b * res.k, (b + 1) * res.k)).map((i) => `${ds.items[i]}[${ds.itemGroup[i]}]`);
          console.log(`  user ${ds.users[u]} (group ${ds.userGroup[u]}, tokens ${tok}, ${split.train[u].length} training items): ${rec.join(' ')}`);
        });
      } finally {
        model.dispose();
      }
    });
}
