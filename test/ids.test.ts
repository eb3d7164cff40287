import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { requireManifest, verifyStage } from '../lib/io/manifest.js';
import { readModelIds } from '../lib/io/ids.js';

const tmp = tempDir();

describe('ids.json in the model directory', () => {
  it('is written with the cf stage, recorded with its sha256, and holds the unseen users\' histories', () => {
    const dir = join(tmp.dir, 'm');
    const r = runCli(['train', 'synthetic:users=80,items=40,seed=2', '--out', dir, '--stage', 'cf', '--epochs', '5', '--unseen', '0.1', '--no-progress', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const m = requireManifest(dir);
    expect(Object.keys(m.stages.cf.files)).toContain('ids.json');
    const ids = readModelIds(join(dir, 'ids.json'));
    expect(ids.users).toHaveLength(80);
    expect(ids.items).toHaveLength(40);
    expect(ids.users[0]).toBe('u0');
    expect(ids.unseen).toHaveLength(8);
    expect(ids.fingerprint).toBe(m.dataset.fingerprint);
    verifyStage(dir, m, 'cf');
    writeFileSync(join(dir, 'ids.json'), readFileSync(join(dir, 'ids.json'), 'utf8').replace('"u0"', '"ux"'));
    expect(() => verifyStage(dir, m, 'cf')).toThrow(/ids.json of stage 'cf' is corrupted/);
    expect(existsSync(join(dir, 'ids.json'))).toBe(true);
  });
});
