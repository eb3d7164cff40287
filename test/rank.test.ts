import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { rankTargets } from '../lib/eval/rank.js';
import { toCsr } from '../lib/data/types.js';
import { backendInfo } from '../lib/native/addon.js';
import { rng, randomVectors } from './helpers/random.js';

// Independent reference in float64.
function referenceRanks(U: Float32Array, I: Float32Array, D: number, targets: Int32Array, excl: number[][], cosine: boolean): number[] {
  const B = targets.length;
  const N = I.length / D;
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const score = (j: number) => {
      let s = 0, nu = 0, ni = 0;
      for (let d = 0; d < D; d++) {
        s += U[b * D + d] * I[j * D + d];
        nu += U[b * D + d] ** 2;
        ni += I[j * D + d] ** 2;
      }
      return cosine ? (nu > 0 && ni > 0 ? s / Math.sqrt(nu * ni) : 0) : s;
    };
    const ex = new Set(excl[b]);
    const t = score(targets[b]);
    let r = 0;
    for (let j = 0; j < N; j++) if (!ex.has(j) && score(j) >= t) r++;
    out.push(r);
  }
  return out;
}

describe('rankTargets (native full ranking)', () => {
  it('reports the backends', () => {
    const info = backendInfo();
    expect(info.compiled).toContain('cpu');
    expect(info.threads).toBeGreaterThan(0);
    expect(typeof info.cuda.available).toBe('boolean');
  });

  it('hand-worked case: ties count against the target, exclusions drop out', async () => {
    const users = new Float32Array([1, 0]);
    const items = new Float32Array([1, 0, 2, 0, 1, 0, 0, 1, 3, 0]);
    const targets = new Int32Array([0]);
    expect(Array.from(await rankTargets({ users, items, dim: 2, targets }))).toEqual([4]);
    const exclude = toCsr([[4, 2]]);
    expect(Array.from(await rankTargets({ users, items, dim: 2, targets, exclude }))).toEqual([2]);
  });

  for (const similarity of ['dot', 'cosine'] as const) {
    it(`equals a float64 reference on random data (${similarity})`, async () => {
      const rand = rng(42);
      for (const D of [3, 8, 64]) {
        const B = 50, N = 300;
        const U = randomVectors(rand, B, D);
        const I = randomVectors(rand, N, D);
        I.copyWithin(200 * D, 0, 50 * D); // exact duplicates: real ties
        const targets = Int32Array.from({ length: B }, () => Math.floor(rand() * N));
        const excl = Array.from({ length: B }, (_, b) =>
          Array.from({ length: Math.floor(rand() * 8) }, () => Math.floor(rand() * N)).filter((j) => j !== targets[b]),
        );
        const got = await rankTargets({ users: U, items: I, dim: D, targets, exclude: toCsr(excl), similarity });
        expect(Array.from(got)).toEqual(referenceRanks(U, I, D, targets, excl, similarity === 'cosine'));
      }
    });
  }

  it('reads typed arrays in place, honouring byteOffset', async () => {
    const buf = new Float32Array(2 + 10);
    buf.set([1, 0], 0);
    buf.set([1, 0, 2, 0, 1, 0, 0, 1, 3, 0], 2);
    const users = buf.subarray(0, 2);
    const items = buf.subarray(2);
    const r = await rankTargets({ users, items, dim: 2, targets: new Int32Array([3]) });
    expect(Array.from(r)).toEqual([5]);
  });

  it('rejects bad arguments with clear errors, without crashing', async () => {
    const users = new Float32Array([1, 0]);
    const items = new Float32Array([1, 0, 0, 1]);
    await expect(rankTargets({ users, items, dim: 2, targets: new Int32Array([2]) })).rejects.toThrow(/targets\[0\] = 2/);
    await expect(rankTargets({ users, items, dim: 3, targets: new Int32Array([0]) })).rejects.toThrow(/multiple of dim/);
    await expect(rankTargets({ users, items, dim: 2, targets: new Int32Array([0, 1]) })).rejects.toThrow(/targets.length/);
    await expect(
      rankTargets({ users: new Float32Array([NaN, 0]), items, dim: 2, targets: new Int32Array([0]) }),
    ).rejects.toMatchObject({ code: 'ERR_TOKENREC_NOT_FINITE' });
    await expect(
      rankTargets({ users, items, dim: 2, targets: new Int32Array([0]), exclude: toCsr([[0]]) }),
    ).rejects.toThrow(/excludes its own target/);
    await expect(
      rankTargets({ users: [1, 0] as unknown as Float32Array, items, dim: 2, targets: new Int32Array([0]) }),
    ).rejects.toThrow(/users must be a Float32Array/);
    await expect(rankTargets({ users, items, dim: 0, targets: new Int32Array([0]) })).rejects.toThrow(/dim must be an integer >= 1/);
    await expect(rankTargets({ users, items, dim: 2, targets: new Int32Array([0]), backend: 'gpu' as 'cpu' })).rejects.toThrow(/backend must be/);
    await expect(rankTargets({ users: new Float32Array(0), items, dim: 2, targets: new Int32Array(0) })).resolves.toHaveLength(0);
  });

  it('keeps the event loop ticking while a long ranking runs', async () => {
    const rand = rng(1);
    const D = 64, B = 3000, N = 20000;
    const users = randomVectors(rand, B, D);
    const items = randomVectors(rand, N, D);
    const targets = Int32Array.from({ length: B }, () => Math.floor(rand() * N));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = performance.now();
    await rankTargets({ users, items, dim: D, targets });
    const ms = performance.now() - t0;
    clearInterval(timer);
    // The call takes long enough to measure, and the timer fired during it.
    expect(ms).toBeGreaterThan(20);
    expect(ticks).toBeGreaterThan(Math.min(3, ms / 20));
  });

  it('loads and runs in a worker thread', async () => {
    const code = `
      import { createRequire } from 'node:module';
      import { parentPort, workerData } from 'node:worker_threads';
      const require = createRequire(workerData.root + '/');
      const addon = require(workerData.addon);
      addon.rankTargets({ users: new Float32Array([1, 0]), items: new Float32Array([1, 0, 2, 0]), dim: 2,
        targets: new Int32Array([0]), similarity: 'dot', backend: 'cpu' })
        .then((r) => parentPort.postMessage(Array.from(r)));
    `;
    const { packageRoot } = await import('../lib/native/addon.js');
    const root = packageRoot();
    const w = new Worker(code, { eval: true, workerData: { root, addon: root + '/build/Release/tokenrec.node' } });
    const msg = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    expect(msg).toEqual([2]);
  });
});
