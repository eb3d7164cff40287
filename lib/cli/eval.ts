// `tokenrec eval <dir> --stage cf [--split valid|test]`: evaluates a trained stage of a model
// directory. The data is reloaded from the path recorded in the manifest (or --data) and split
// the same way; its fingerprint must match the model's.
import { Option, type Command } from 'commander';
import { loadCfStage, CF_STAGE } from '../cf/store.js';
import { evaluateCf } from '../cf/train.js';
import type { SplitName } from '../eval/evaluate.js';
import { formatMetrics } from '../eval/metrics.js';
import { requireManifest, splitFingerprint } from '../io/manifest.js';
import type { Backend } from '../native/addon.js';
import { parseKs } from './baseline.js';
import { loadSplitFromCli, type DataCliOptions } from './data-options.js';

export interface EvalCliOptions {
  stage: string;
  split: SplitName;
  data?: string;
  ks: number[];
  backend: Backend;
  json?: boolean;
}

type StageEvaluator = (dir: string, o: EvalCliOptions) => Promise<void>;

async function evalCfStage(dir: string, o: EvalCliOptions): Promise<void> {
  const manifest = requireManifest(dir);
  const source = o.data ?? manifest.dataset.source;
  if (!source) throw new Error(`${dir}: the manifest does not say where the data came from; pass --data <path>`);
  const splitOpts = (manifest.dataset.split ?? {}) as DataCliOptions & { unseenFraction?: number };
  const { split } = loadSplitFromCli(source, { ...splitOpts, unseen: splitOpts.unseenFraction ?? 0, seed: splitOpts.seed ?? 0 });
  const fp = splitFingerprint(split);
  if (fp !== manifest.dataset.fingerprint) {
    throw new Error(
      `${source} (split as recorded) does not match the data this model was trained on (fingerprint ${fp.slice(0, 12)}…, model ${manifest.dataset.fingerprint.slice(0, 12)}…)`,
    );
  }
  const model = loadCfStage(dir);
  const t0 = performance.now();
  const r = await evaluateCf(model, split, o.split, { ks: o.ks, backend: o.backend });
  const seconds = (performance.now() - t0) / 1000;
  if (o.json) {
    console.log(JSON.stringify({ stage: CF_STAGE, dir, dataset: manifest.dataset.name, model: model.config.model, split: o.split, metrics: r.seen, unseenMetrics: r.unseen, seconds }));
    return;
  }
  console.log(`${manifest.dataset.name}: ${model.config.model}, d = ${model.dim}, ${o.split} split, ${r.seen.users} users`);
  console.log(formatMetrics(r.seen));
  if (r.unseen) {
    console.log(`unseen users (fold-in, ${r.unseen.users}):`);
    console.log(formatMetrics(r.unseen));
  }
}

export const EVAL_STAGES: Record<string, StageEvaluator> = { cf: evalCfStage };

export function registerEval(program: Command): void {
  program
    .command('eval <dir>')
    .description('evaluate a trained stage of a model directory (full ranking, HR/NDCG@K)')
    .addOption(new Option('--stage <stage>', 'stage to evaluate').choices(Object.keys(EVAL_STAGES)).default('cf'))
    .addOption(new Option('--split <split>', 'which targets').choices(['valid', 'test']).default('test'))
    .option('--data <path>', 'the interactions file (default: the path recorded in the manifest)')
    .option('--ks <list>', 'cut-offs', parseKs, [10, 20, 30])
    .addOption(new Option('--backend <backend>', 'kernels').choices(['auto', 'cpu', 'cuda']).default('cpu'))
    .option('--json', 'machine-readable output on stdout')
    .action(async (dir: string, o: EvalCliOptions) => {
      await EVAL_STAGES[o.stage](dir, o);
    });
}
