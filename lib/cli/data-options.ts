// Options shared by every command that reads interaction data, and the code that turns them
// into a Dataset and a Split. `<data>` is a file path, or `synthetic[:key=value,...]` for the
// project's seeded synthetic data (keys: users, items, groups, minPerUser, maxPerUser, inGroup,
// popularitySkew, seed).
import { Option, type Command } from 'commander';
import { loadDataset } from '../data/load.js';
import { splitLeaveOneOut } from '../data/split.js';
import { syntheticDataset, type SyntheticOptions } from '../data/synthetic.js';
import type { DataFormat, Dataset, Split } from '../data/types.js';

export interface DataCliOptions {
  format?: DataFormat;
  userCol?: string;
  itemCol?: string;
  timeCol?: string;
  unseen?: number;
  seed?: number;
}

function parseNumber(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${name} must be a number, got '${v}'`);
    return n;
  };
}

export function addDataOptions(cmd: Command, withSplit = true): Command {
  cmd
    .addOption(new Option('--format <format>', 'input format (default: detected)').choices(['openp5', 'pairs', 'recbole', 'csv', 'tsv']))
    .option('--user-col <name>', 'csv/tsv/recbole: user column')
    .option('--item-col <name>', 'csv/tsv/recbole: item column')
    .option('--time-col <name>', "csv/tsv/recbole: timestamp column ('' to ignore timestamps)");
  if (withSplit) {
    cmd
      .option('--unseen <fraction>', 'fraction of least-active users held out of training (unseen users)', parseNumber('--unseen'), 0)
      .option('--seed <n>', 'seed for the split', parseNumber('--seed'), 0);
  }
  return cmd;
}

const SYNTH_KEYS = new Set(['users', 'items', 'groups', 'minPerUser', 'maxPerUser', 'inGroup', 'popularitySkew', 'seed']);

export function parseSyntheticSpec(spec: string): SyntheticOptions | undefined {
  if (spec !== 'synthetic' && !spec.startsWith('synthetic:')) return undefined;
  const o: Record<string, number> = {};
  for (const kv of spec.slice('synthetic:'.length).split(',').filter(Boolean)) {
    const [k, v] = kv.split('=');
    if (!SYNTH_KEYS.has(k)) throw new Error(`synthetic data: unknown key '${k}' (known: ${[...SYNTH_KEYS].join(', ')})`);
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) throw new Error(`synthetic data: ${k} needs a number, got '${v}'`);
    o[k] = n;
  }
  return o as SyntheticOptions;
}

export function loadDatasetFromCli(data: string, o: DataCliOptions): Dataset {
  const synth = parseSyntheticSpec(data);
  if (synth) return syntheticDataset(synth);
  return loadDataset(data, { format: o.format, userColumn: o.userCol, itemColumn: o.itemCol, timeColumn: o.timeCol });
}

export function loadSplitFromCli(data: string, o: DataCliOptions): { dataset: Dataset; split: Split } {
  const dataset = loadDatasetFromCli(data, o);
  const split = splitLeaveOneOut(dataset, { unseenFraction: o.unseen ?? 0, seed: o.seed ?? 0 });
  return { dataset, split };
}
