// A tiny trained model directory for the serving tests, built with the CLI (cf -> tokenizer -> llm)
// in a few seconds: 150 synthetic users (10 % held out as unseen), 100 items, d = 16,
// disambiguated codes, a t5-tiny backbone trained for one epoch.
import { join } from 'node:path';
import { runCli } from './cli.js';

export const SERVE_DATA = 'synthetic:users=150,items=100,seed=3';

/** extra: more `tokenrec train` arguments (later ones win: e.g. another --llm-loss). */
export function buildServeModel(parent: string, name = 'model', extra: string[] = []): string {
  const dir = join(parent, name);
  const r = runCli([
    'train', SERVE_DATA, '--out', dir, '--unseen', '0.1', '--epochs', '10', '--eval-every', '5', '--dim', '16',
    '--L', '16', '--codebook-dim', '32', '--tok-epochs', '2', '--disambiguate', '--preset', 't5-tiny', '--llm-epochs', '1',
    '--history-cap', '10', '--queries', '2', '--samples-per-user', '1', '--no-progress', '--json', ...extra,
  ], { NODE_NO_WARNINGS: '1' });
  if (r.status !== 0) throw new Error(`tokenrec train failed (${r.status}): ${r.stderr}`);
  return dir;
}
