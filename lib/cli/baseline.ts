import { Option, type Command } from 'commander';
import { evaluatePopularity } from '../baselines/pop.js';
import { formatMetrics } from '../eval/metrics.js';
import type { SplitName } from '../eval/evaluate.js';
import { addDataOptions, loadSplitFromCli, type DataCliOptions } from './data-options.js';

export function parseKs(v: string): number[] {
  const ks = v.split(',').map((s) => Number(s.trim()));
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new Error(`--ks must be a comma-separated list of positive integers, got '${v}'`);
  return ks;
}

export function registerBaseline(program: Command): void {
  addDataOptions(
    program
      .command('baseline <data>')
      .description('evaluate a non-learned baseline on the leave-one-out split')
      .addOption(new Option('--model <model>', 'baseline').choices(['pop']).default('pop'))
      .addOption(new Option('--split <split>', 'which split to evaluate').choices(['valid', 'test']).default('test'))
      .option('--ks <list>', 'cut-offs', parseKs, [10, 20, 30])
      .option('--json', 'machine-readable output on stdout'),
  ).action(async (data: string, opts: DataCliOptions & { model: 'pop'; split: SplitName; ks: number[]; json?: boolean }) => {
    const { dataset, split } = loadSplitFromCli(data, opts);
    const t0 = performance.now();
    const seen = await evaluatePopularity(split, opts.split, { ks: opts.ks });
    const unseen = split.unseenUsers.length ? await evaluatePopularity(split, opts.split, { ks: opts.ks, users: split.unseenUsers.filter((u) => (opts.split === 'valid' ? split.valid : split.test)[u] >= 0) }) : undefined;
    const seconds = (performance.now() - t0) / 1000;
    if (opts.json) {
      console.log(JSON.stringify({ dataset: dataset.name, model: opts.model, split: opts.split, report: split.report, metrics: seen.metrics, unseenMetrics: unseen?.metrics, seconds }));
      return;
    }
    console.log(`${dataset.name}: most-popular, ${opts.split} split, ${seen.metrics.users} users`);
    console.log(formatMetrics(seen.metrics));
    if (unseen) {
      console.log(`unseen users (${unseen.metrics.users}):`);
      console.log(formatMetrics(unseen.metrics));
    }
  });
}
