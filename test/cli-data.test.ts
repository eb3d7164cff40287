import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { HAVE_SHARED_DATA, SHARED_DATA, runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir();

describe('tokenrec stats / baseline', () => {
  it.skipIf(!HAVE_SHARED_DATA)('stats reproduces the counts of the four datasets (../shared/data/README.md)', () => {
    const want: Record<string, [number, number, number]> = {
      'LastFM/user_sequence.txt.gz': [1090, 3646, 52551],
      'ML1M/ml-1m.txt.gz': [6040, 3416, 999611],
      'Beauty/user_sequence.txt.gz': [22363, 12101, 198502],
      'Clothing/user_sequence.txt.gz': [39387, 23033, 278677],
    };
    for (const [file, [users, items, interactions]] of Object.entries(want)) {
      const r = runCli(['stats', join(SHARED_DATA, file), '--json']);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ users, items, interactions, duplicatesDropped: 0 });
    }
  });

  it('baseline --json on synthetic data, and human output', () => {
    const r = runCli(['baseline', 'synthetic:users=200,items=100,seed=2', '--json', '--unseen', '0.05']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.metrics.users).toBe(190);
    expect(j.unseenMetrics.users).toBe(10);
    expect(j.metrics.hr[20]).toBeGreaterThan(0);
    const h = runCli(['baseline', 'synthetic:users=50,items=40', '--split', 'valid']);
    expect(h.stdout).toMatch(/HR@10 \d\.\d{4}  NDCG@10/);
  });

  it('bad input: one clear line and exit status 1, no stack trace', () => {
    const bad = tmp.file('bad.txt', 'a b c\n');
    const r = runCli(['stats', bad, '--format', 'pairs']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^tokenrec: .*expected 'user item'/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    expect(runCli(['baseline', 'synthetic:users=x']).stderr).toMatch(/users needs a number/);
    expect(runCli(['stats', tmp.dir + '/missing.txt']).stderr).toMatch(/cannot read/);
  });
});
