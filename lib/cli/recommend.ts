// `tokenrec recommend <dir> --user ID`: top-k items for one user (or a new user's history).
import type { Command } from 'commander';
import { Recommender, type RecommendRequest } from '../serve/recommender.js';
import { addRecommenderOptions, positiveInt, recommenderOptions, type ServeCliOptions } from './serve-options.js';

interface RecommendCliOptions extends ServeCliOptions {
  user?: string;
  history?: string;
  k: number;
  exclude?: string;
  json?: boolean;
}

export function registerRecommend(program: Command): void {
  const cmd = program
    .command('recommend <dir>')
    .description("top-k items for a user of the model directory (--user) or a new user's items (--history)")
    .option('--user <id>', "the dataset's user id")
    .option('--history <ids>', 'comma-separated item ids of a new user')
    .option('-k, --k <n>', 'items to return', positiveInt('-k'), 20)
    .option('--exclude <ids>', 'comma-separated item ids never to recommend')
    .option('--json', 'machine-readable output');
  addRecommenderOptions(cmd).action(async (dir: string, o: RecommendCliOptions) => {
    if ((o.user === undefined) === (o.history === undefined)) throw new Error('give exactly one of --user <id> or --history <ids>');
    const req: RecommendRequest = { k: o.k };
    if (o.user !== undefined) req.user = o.user;
    else req.history = o.history!.split(',').filter(Boolean);
    if (o.exclude) req.exclude = o.exclude.split(',').filter(Boolean);
    const rec = await Recommender.load(dir, recommenderOptions(o, false));
    try {
      const t0 = performance.now();
      const r = await rec.recommend(req);
      const ms = performance.now() - t0;
      if (o.json) {
        console.log(JSON.stringify(r));
        return;
      }
      const info = rec.info();
      console.log(`${info.dataset}: ${o.user !== undefined ? `user ${o.user}` : `new user with ${req.history!.length} items`}, ${info.scoring} scoring, ${ms.toFixed(1)} ms (ONNX ${info.onnx.provider}, top-K ${info.topkBackend})`);
      r.items.forEach((it, j) => console.log(`${String(j + 1).padStart(4)}  ${it.id.padEnd(16)} ${it.score.toFixed(4)}`));
    } finally {
      await rec.dispose();
    }
  });
}
