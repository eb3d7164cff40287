// `tokenrec split <data> --out <dir>`: writes the leave-one-out split as plain files (format in
// lib/data/export.ts) so that other libraries train and evaluate on exactly tokenrec's split.
import type { Command } from 'commander';
import { writeSplitDir } from '../data/export.js';
import { addDataOptions, loadSplitFromCli, type DataCliOptions } from './data-options.js';

export function registerSplit(program: Command): void {
  addDataOptions(
    program
      .command('split <data>')
      .description('write the leave-one-out split (train/valid/test, dense ids, id maps) as TSV files for other libraries')
      .requiredOption('--out <dir>', 'output directory (created; existing split files are replaced)')
      .option('--json', 'print meta.json on stdout'),
  ).action((data: string, opts: DataCliOptions & { out: string; json?: boolean }) => {
    const { dataset, split } = loadSplitFromCli(data, opts);
    const meta = writeSplitDir(opts.out, dataset, split);
    if (opts.json) {
      console.log(JSON.stringify(meta));
      return;
    }
    console.log(
      `${dataset.name}: ${meta.users} users, ${meta.items} items -> ${opts.out}: ` +
        `train.tsv ${meta.trainInteractions} interactions, valid.tsv ${meta.validTargets}, test.tsv ${meta.testTargets} targets` +
        (meta.unseenUsers.length ? `, unseen.tsv ${meta.unseenUsers.length} held-out users (${meta.unseenInteractions} interactions)` : ''),
    );
  });
}
