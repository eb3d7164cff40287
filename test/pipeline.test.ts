// The whole pipeline end to end on small synthetic data: cf -> tokenizer -> llm, through the CLI.
import { describe, expect, it } from 'vitest';
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/tmp.js';
import { requireManifest } from '../lib/io/manifest.js';

const tmp = tempDir();

describe('tokenrec train (all stages)', () => {
  const dir = join(tmp.dir, 'model');
  const args = ['train', 'synthetic:users=300,items=150,groups=6,seed=3', '--out', dir, '--no-progress', '--json',
    '--epochs', '60', '--L', '16', '--tok-epochs', '10', '--preset', 't5-tiny', '--llm-epochs', '3', '--history-cap', '10',
    '--queries', '2', '--samples-per-user', '2', '--unseen', '0.05'];

  it('trains every stage, beats most-popular, and reports unseen users', () => {
    const r = runCli(args);
    expect(r.status, r.stderr).toBe(0);
    const m = requireManifest(dir);
    expect(Object.keys(m.stages).sort()).toEqual(['cf', 'llm', 'tokenizer']);
    for (const f of ['backbone.onnx', 'vocab.json']) expect(existsSync(join(dir, f))).toBe(true);
    const cf = m.stages.cf.metrics as { mostPopularTest: { hr: Record<number, number> } };
    const llm = m.stages.llm.metrics as { test: { seen: { hr: Record<number, number> } }; testDot: { hr: Record<number, number> }; testUnseenUsers: { users: number } };
    expect(llm.test.seen.hr[20]).toBeGreaterThan(cf.mostPopularTest.hr[20]);
    expect(llm.testDot.hr[20]).toBeGreaterThan(cf.mostPopularTest.hr[20]);
    expect(llm.testUnseenUsers.users).toBeGreaterThan(0);
  });

  it('skips stages that are up to date', () => {
    const t0 = performance.now();
    const r = runCli(args);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { stage: string; upToDate?: boolean });
    expect(lines.map((l) => [l.stage, l.upToDate])).toEqual([['cf', true], ['tokenizer', true], ['llm', true]]);
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it('trains the language model with the full-softmax loss, which also beats most-popular', () => {
    // A copy of the trained directory: same CF vectors and codes, the llm stage retrained.
    const other = join(tmp.dir, 'softmax');
    cpSync(dir, other, { recursive: true });
    const r = runCli([...args.slice(0, 3), other, ...args.slice(4), '--stage', 'llm', '--llm-loss', 'softmax-cosine', '--temperature', '0.2']);
    expect(r.status, r.stderr).toBe(0);
    const m = requireManifest(other);
    expect((m.stages.llm.config as { train: { loss: string; temperature: number } }).train).toMatchObject({ loss: 'softmax-cosine', temperature: 0.2 });
    const cf = m.stages.cf.metrics as { mostPopularTest: { hr: Record<number, number> } };
    const llm = m.stages.llm.metrics as { test: { seen: { hr: Record<number, number> } } };
    expect(llm.test.seen.hr[20]).toBeGreaterThan(cf.mostPopularTest.hr[20]);
  });
});

describe('tokenrec eval (llm stage)', () => {
  it('reproduces the metrics recorded at training time, per prompt kind', () => {
    const dir = join(tmp.dir, 'model');
    const m = requireManifest(dir);
    const llm = m.stages.llm.metrics as { test: Record<string, { hr: Record<number, number> }> };
    for (const prompt of ['seen', 'unseen']) {
      const r = runCli(['eval', dir, '--stage', 'llm', '--prompt', prompt, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout) as { metrics: { hr: Record<number, number> }; unseenMetrics?: { users: number } };
      expect(j.metrics.hr[20]).toBeCloseTo(llm.test[prompt].hr[20], 10);
      expect(j.unseenMetrics?.users).toBeGreaterThan(0);
    }
  });
});
