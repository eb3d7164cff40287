import type { Command } from 'commander';
import { datasetStats } from '../data/load.js';
import { addDataOptions, loadDatasetFromCli, type DataCliOptions } from './data-options.js';

export function registerStats(program: Command): void {
  addDataOptions(
    program
      .command('stats <data>')
      .description('users, items, interactions, density and interactions per user/item of a dataset')
      .option('--json', 'machine-readable output on stdout'),
    false,
  ).action((data: string, opts: DataCliOptions & { json?: boolean }) => {
    const s = datasetStats(loadDatasetFromCli(data, opts));
    if (opts.json) {
      console.log(JSON.stringify(s));
      return;
    }
    const fmt = (n: number) => n.toLocaleString('en-US');
    console.log(`${s.name} (${s.format})`);
    console.log(`users         ${fmt(s.users)}`);
    console.log(`items         ${fmt(s.items)}`);
    console.log(`interactions  ${fmt(s.interactions)}`);
    console.log(`density       ${(s.density * 100).toFixed(4)}%`);
    console.log(`per user      min ${s.perUser.min}  median ${s.perUser.median}  max ${s.perUser.max}  mean ${s.perUser.mean.toFixed(2)}`);
    console.log(`per item      min ${s.perItem.min}  median ${s.perItem.median}  max ${s.perItem.max}  mean ${s.perItem.mean.toFixed(2)}`);
    if (s.duplicatesDropped) console.log(`duplicates    ${fmt(s.duplicatesDropped)} repeated (user, item) interactions dropped`);
  });
}
