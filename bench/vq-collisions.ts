// Are the ids that share a K-tuple near-duplicates? For a model directory with a tokenizer stage:
// distances between colliding items (every pair inside a shared tuple) against each item's
// nearest-neighbour distance, in the per-dimension standardised CF item space (what the
// tokenizer's encoders see). Exact O(items^2 * d): meant for LastFM/ML1M-sized catalogues.
//
//   npx tsc -p . && node dist/bench/vq-collisions.js <model dir>
// (it reads the stored code table: on a directory trained with unique codes there are no shared
// tuples left; use one trained with --no-unique-codes, or before unique codes existed)
import { loadCfStage } from '../lib/cf/store.js';
import { loadTokenizerCodes } from '../lib/tokenizer/codes.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node dist/bench/vq-collisions.js <model dir>');
  process.exit(2);
}
const cf = loadCfStage(dir);
const { items } = loadTokenizerCodes(dir);
const D = cf.dim, N = cf.itemVectors.length / D, V = cf.itemVectors;
const X = new Float64Array(N * D);
for (let d = 0; d < D; d++) {
  let m = 0, v = 0;
  for (let i = 0; i < N; i++) m += V[i * D + d] / N;
  for (let i = 0; i < N; i++) v += (V[i * D + d] - m) ** 2 / N;
  for (let i = 0; i < N; i++) X[i * D + d] = (V[i * D + d] - m) / Math.sqrt(v || 1);
}
const dist = (a: number, b: number) => {
  let s = 0;
  for (let d = 0; d < D; d++) s += (X[a * D + d] - X[b * D + d]) ** 2;
  return Math.sqrt(s);
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const nn: number[] = [];
for (let i = 0; i < N; i++) {
  let best = Infinity;
  for (let j = 0; j < N; j++) if (j !== i) best = Math.min(best, dist(i, j));
  nn.push(best);
}
const groups = new Map<string, number[]>();
for (let i = 0; i < N; i++) {
  const key = Array.from(items.codes.subarray(i * items.K, (i + 1) * items.K)).join(',');
  groups.set(key, [...(groups.get(key) ?? []), i]);
}
const pairs: number[] = [];
for (const g of groups.values()) for (let a = 0; a < g.length; a++) for (let b = a + 1; b < g.length; b++) pairs.push(dist(g[a], g[b]));
console.log(`${N} items, ${groups.size} distinct tuples, ${pairs.length} colliding pairs`);
console.log(`median distance: colliding pairs ${pairs.length ? median(pairs).toFixed(2) : '-'}, nearest neighbours ${median(nn).toFixed(2)}`);
// The largest shared tuples, with the norms of their raw CF vectors against the median norm (cold
// items sit near the origin, where no tokenizer can tell them apart).
const norm = (i: number) => Math.hypot(...V.subarray(i * D, (i + 1) * D));
const norms = Array.from({ length: N }, (_, i) => norm(i));
console.log(`median CF vector norm ${median(norms).toFixed(2)}`);
for (const g of [...groups.values()].sort((a, b) => b.length - a.length).slice(0, 3)) {
  if (g.length < 2) break;
  const ns = g.map((i) => norms[i]);
  console.log(`shared tuple of ${g.length} items: norms ${Math.min(...ns).toFixed(2)}..${Math.max(...ns).toFixed(2)}`);
}
