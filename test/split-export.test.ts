import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSplitDir, writeSplitDir } from '../lib/data/export.js';
import { datasetFromSequences } from '../lib/data/load.js';
import { splitLeaveOneOut } from '../lib/data/split.js';
import { syntheticDataset } from '../lib/data/synthetic.js';
import type { Split } from '../lib/data/types.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir();

function expectSameSplit(a: Split, b: Split): void {
  expect(b.numUsers).toBe(a.numUsers);
  expect(b.numItems).toBe(a.numItems);
  for (let u = 0; u < a.numUsers; u++) expect(Array.from(b.train[u]), `train of user ${u}`).toEqual(Array.from(a.train[u]));
  expect(Array.from(b.valid)).toEqual(Array.from(a.valid));
  expect(Array.from(b.test)).toEqual(Array.from(a.test));
  expect(Array.from(b.heldOut)).toEqual(Array.from(a.heldOut));
  expect(Array.from(b.trainUsers)).toEqual(Array.from(a.trainUsers));
  expect(Array.from(b.unseenUsers)).toEqual(Array.from(a.unseenUsers));
  expect(b.report).toEqual(a.report);
}

describe('split export (tokenrec split)', () => {
  it('round-trips a synthetic split with unseen users, short users and the id maps', () => {
    const ds = syntheticDataset({ users: 120, items: 80, minPerUser: 1, maxPerUser: 12, seed: 5 });
    const split = splitLeaveOneOut(ds, { unseenFraction: 0.1, seed: 3 });
    expect(split.report.trainOnly + split.report.noValid).toBeGreaterThan(0);
    const dir = join(tmp.dir, 'synth');
    const meta = writeSplitDir(dir, ds, split);
    expect(meta.unseenUsers.length).toBe(split.unseenUsers.length);
    expect(meta.unseenUsers.length).toBeGreaterThan(0);
    const back = readSplitDir(dir);
    expectSameSplit(split, back.split);
    expect(back.users).toEqual(ds.users);
    expect(back.items).toEqual(ds.items);
    // train.tsv holds only users in training; unseen.tsv the held-out users' histories.
    const trainUsers = new Set(readFileSync(join(dir, 'train.tsv'), 'utf8').trim().split('\n').map((l) => Number(l.split('\t')[0])));
    for (const u of split.unseenUsers) expect(trainUsers.has(u)).toBe(false);
    const unseenLines = readFileSync(join(dir, 'unseen.tsv'), 'utf8').trim().split('\n');
    expect(unseenLines.length).toBe(meta.unseenInteractions);
    // One target per line, users with a target only.
    const testLines = readFileSync(join(dir, 'test.tsv'), 'utf8').trim().split('\n');
    expect(testLines.length).toBe(Array.from(split.test).filter((t) => t >= 0).length);
  });

  it('keeps the sequence order of training items and the original ids', () => {
    const ds = datasetFromSequences('t', [['alice', ['z', 'y', 'x', 'w', 'v']], ['bob', ['x', 'z']], ['carol', ['w']]]);
    const split = splitLeaveOneOut(ds);
    const dir = join(tmp.dir, 'small');
    writeSplitDir(dir, ds, split);
    expect(readFileSync(join(dir, 'train.tsv'), 'utf8')).toBe('0\t0\n0\t1\n0\t2\n1\t2\n2\t3\n');
    expect(readFileSync(join(dir, 'valid.tsv'), 'utf8')).toBe('0\t3\n');
    expect(readFileSync(join(dir, 'test.tsv'), 'utf8')).toBe('0\t4\n1\t0\n');
    expect(readFileSync(join(dir, 'users.txt'), 'utf8')).toBe('alice\nbob\ncarol\n');
    expect(existsSync(join(dir, 'unseen.tsv'))).toBe(false);
    expectSameSplit(split, readSplitDir(dir).split);
  });

  it('a tampered file is refused by the fingerprint check; a bad line names the file and line', () => {
    const ds = syntheticDataset({ users: 30, items: 20, seed: 2 });
    const dir = join(tmp.dir, 'tampered');
    writeSplitDir(dir, ds, splitLeaveOneOut(ds));
    const p = join(dir, 'test.tsv');
    const lines = readFileSync(p, 'utf8').split('\n');
    const [u, i] = lines[0].split('\t').map(Number);
    lines[0] = `${u}\t${(i + 1) % 20}`;
    writeFileSync(p, lines.join('\n'));
    expect(() => readSplitDir(dir)).toThrow(/fingerprint/);
    writeFileSync(p, '0\t999\n');
    expect(() => readSplitDir(dir)).toThrow(/test\.tsv:1: expected 'user<TAB>item'/);
  });

  it('the CLI writes the same split as the library', () => {
    const dir = join(tmp.dir, 'cli');
    const r = runCli(['split', 'synthetic:users=60,items=40,seed=4', '--out', dir, '--unseen', '0.1', '--seed', '2', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const meta = JSON.parse(r.stdout);
    const ds = syntheticDataset({ users: 60, items: 40, seed: 4 });
    const split = splitLeaveOneOut(ds, { unseenFraction: 0.1, seed: 2 });
    expectSameSplit(split, readSplitDir(dir).split);
    expect(meta.report).toMatchObject({ unseenFraction: 0.1, seed: 2, unseen: split.unseenUsers.length });
    expect(runCli(['split', 'synthetic:users=10,items=8']).stderr).toMatch(/--out/);
  });
});
