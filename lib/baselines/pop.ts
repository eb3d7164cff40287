// Most-popular baseline: every user gets the items ranked by their number of training
// interactions (users held out as unseen do not count). Ranked through the same native
// full-ranking kernel as every model: a 1-dimensional dot product (user = 1, item = count),
// so ties between equally popular items count against the target like everywhere else.
import type { Split } from '../data/types.js';
import { trainingItemCounts } from '../data/split.js';
import { evaluateVectors, usersWithTarget, type Evaluation, type SplitName } from '../eval/evaluate.js';
import type { Backend } from '../native/addon.js';

export async function evaluatePopularity(
  split: Split,
  which: SplitName,
  opts: { users?: Int32Array; ks?: readonly number[]; backend?: Backend } = {},
): Promise<Evaluation> {
  const counts = trainingItemCounts(split);
  const users = opts.users ?? usersWithTarget(split, which);
  return evaluateVectors({
    split,
    which,
    users,
    userVectors: new Float32Array(users.length).fill(1),
    queryRows: 'selected',
    itemVectors: Float32Array.from(counts),
    dim: 1,
    similarity: 'dot',
    ks: opts.ks,
    backend: opts.backend,
  });
}
