// The native LightGCN against the independent PyTorch implementation in scripts/reference/:
// same propagation, same BPR + L2 loss, same Adam trajectory on tiny deterministic graphs
// (scripts/reference/native_parity.mjs explains the cases). Skipped where /usr/bin/python3 has no torch.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';

const PY = '/usr/bin/python3';
const haveTorch = spawnSync(PY, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const tmp = tempDir();

describe('native LightGCN vs the PyTorch reference (scripts/reference)', () => {
  it.skipIf(!haveTorch)('propagation, loss per step and ego embeddings after 40 Adam steps agree', () => {
    const json = join(tmp.dir, 'parity.json');
    const n = spawnSync(process.execPath, [join(ROOT, 'scripts/reference/native_parity.mjs'), json], { encoding: 'utf8', env: { ...process.env, TOKENREC_NUM_THREADS: '1' } });
    expect(n.status, n.stderr).toBe(0);
    const p = spawnSync(PY, [join(ROOT, 'scripts/reference/parity_torch.py'), json], { encoding: 'utf8' });
    expect(p.status, p.stdout + p.stderr).toBe(0);
    expect(p.stdout).not.toMatch(/MISMATCH/);
    expect(p.stdout.match(/ ok$/gm)?.length).toBe(4);
  }, 60_000);
});
