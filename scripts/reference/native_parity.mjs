// Step-level parity of the native LightGCN with scripts/reference/lightgcn_torch.py, on two tiny
// graphs where nothing is random once the start is fixed:
//   A. propagation: a graph with uneven degrees, a user with no items and an item nobody has;
//      the native final vectors F = mean(E, ÂE, Â²E, Â³E) of given ego embeddings E.
//   B. training: every user has every item but one, so its BPR negative is forced; one batch
//      holds all interactions, so each epoch is one deterministic full-batch Adam step. The
//      native per-step BPR loss and L2 term, and the ego embeddings after the last step.
// Writes JSON that scripts/reference/parity_torch.py replays in PyTorch.
//
//   npx tsc -p . && node scripts/reference/native_parity.mjs /tmp/parity.json \
//     && /usr/bin/python3 scripts/reference/parity_torch.py /tmp/parity.json
import { writeFileSync } from 'node:fs';
import { createCfTrainer } from '../../dist/lib/cf/native.js';
import { toCsr } from '../../dist/lib/data/types.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: node scripts/reference/native_parity.mjs <out.json>');
  process.exit(2);
}
const D = 8, L = 3;

// A: 6 users, 7 items; user 4 has no items (a held-out user), item 6 has no user.
const rowsA = [[0, 1, 2], [1], [0, 2, 3, 4, 5], [5, 1], [], [3, 0]];
const csrA = toCsr(rowsA.map((r) => Int32Array.from(r)));
const tA = await createCfTrainer({ numUsers: 6, numItems: 7, trainPtr: csrA.ptr, trainIdx: csrA.idx, dim: D, layers: L, batchSize: 4, lambda: 1e-4, lr: 1e-3, initStd: 0.3, seed: 7, backend: 'cpu' });
const egoA = tA.getState().ego;
const finalA = await tA.finalVectors();
tA.dispose();

// B: 5 users, 4 items, user u lacks item (u % 4) only: the one negative BPR can draw.
const U = 5, I = 4;
const rowsB = Array.from({ length: U }, (_, u) => Int32Array.from([0, 1, 2, 3].filter((i) => i !== u % I)));
const csrB = toCsr(rowsB);
const nnz = csrB.idx.length;
const lambda = 0.05, lr = 0.01, steps = 40;
const tB = await createCfTrainer({ numUsers: U, numItems: I, trainPtr: csrB.ptr, trainIdx: csrB.idx, dim: D, layers: L, batchSize: nnz, lambda, lr, initStd: 0.1, seed: 3, backend: 'cpu' });
const egoB0 = tB.getState().ego;
const bpr = [], reg = [];
for (let e = 0; e < steps; e++) {
  const batches = await tB.beginEpoch(e);
  if (batches !== 1) throw new Error(`expected one batch per epoch, got ${batches}`);
  const st = await tB.trainBatches(1);
  bpr.push(st.bprSum);
  reg.push(st.regSum);
}
const egoB = tB.getState().ego;
tB.dispose();

const arr = (a) => Array.from(a);
writeFileSync(out, JSON.stringify({
  dim: D, layers: L,
  propagation: { users: 6, items: 7, rows: rowsA, ego: arr(egoA), final: arr(finalA) },
  training: { users: U, items: I, rows: rowsB.map(arr), lambda, lr, steps, ego0: arr(egoB0), bpr, reg, egoAfter: arr(egoB) },
}) + '\n');
console.error(`wrote ${out}`);
