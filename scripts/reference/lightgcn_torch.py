#!/usr/bin/python3
"""Independent PyTorch LightGCN, written from the paper's definitions, to check tokenrec's native
LightGCN on exactly the same split.

LightGCN (He et al., SIGIR 2020):
  A_hat = D^-1/2 A D^-1/2, A the (users + items) bipartite adjacency of the training interactions
  E^(k+1) = A_hat E^(k), final F = mean(E^(0), ..., E^(L))   (layer 0 included)
  score(u, i) = <F_u, F_i>
  loss per batch of B (u, pos, neg) triples:
      mean_b softplus(s(u, neg) - s(u, pos))  +  l2 * 0.5 * (|e_u|^2 + |e_pos|^2 + |e_neg|^2 summed over the batch) / B
  on the ego (layer-0) embeddings; Adam; one uniform negative per training interaction per
  epoch, never one of the user's training items; E ~ N(0, init_std^2).

Evaluation (PAPER.md section 2, the same as tokenrec's): full ranking over all items, the user's
training items excluded (and the validation item when ranking the test target); rank = number of
non-excluded items whose score is >= the target's (ties count against the target); HR@K and
NDCG@K = 1/log2(rank + 1) for rank <= K. Validation NDCG@20 every --eval-every epochs (and at the
last epoch), stop after --patience evaluations without a strictly better one, keep the best.
Users held out of training (unseen.tsv) are neither trained nor evaluated.

Input: a directory written by `tokenrec split <data> --out <dir>` (train.tsv, valid.tsv, test.tsv,
meta.json). Output: one JSON line with the metrics on stdout; progress on stderr.

  /usr/bin/python3 scripts/reference/lightgcn_torch.py <split dir> [--epochs 300] [--batch-size 2048]
      [--lr 1e-3] [--eval-every 5] [--patience 5] [--seed 0] [--threads 1]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch


def read_pairs(path):
    if os.path.getsize(path) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    a = np.loadtxt(path, dtype=np.int64, delimiter='\t', ndmin=2)
    return a


def build_adjacency(U, I, users, items):
    """Symmetric-normalised (U+I, U+I) sparse adjacency of the bipartite training graph."""
    N = U + I
    deg_u = np.bincount(users, minlength=U).astype(np.float64)
    deg_i = np.bincount(items, minlength=I).astype(np.float64)
    w = 1.0 / np.sqrt(deg_u[users] * deg_i[items])
    rows = np.concatenate([users, U + items])
    cols = np.concatenate([U + items, users])
    vals = np.concatenate([w, w]).astype(np.float32)
    A = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(vals), (N, N))
    return A.coalesce()


def propagate(A, E, layers):
    out = E
    cur = E
    for _ in range(layers):
        cur = torch.sparse.mm(A, cur)
        out = out + cur
    return out / (layers + 1)


def sample_negatives(users, U, I, train_keys, gen):
    """One uniform item per row of `users`, redrawn while it is one of that user's training items."""
    neg = torch.randint(0, I, (len(users),), generator=gen).numpy()
    bad = np.isin(users * I + neg, train_keys, assume_unique=False)
    while bad.any():
        idx = np.nonzero(bad)[0]
        neg[idx] = torch.randint(0, I, (len(idx),), generator=gen).numpy()
        bad[idx] = np.isin(users[idx] * I + neg[idx], train_keys)
    return neg


def rank_targets(F, U, eval_users, targets, exclude, chunk=1024):
    """1-based ranks of targets[k] for user eval_users[k]; exclude[u] = items not ranked."""
    items = F[U:]
    ranks = np.empty(len(eval_users), dtype=np.int64)
    for lo in range(0, len(eval_users), chunk):
        us = eval_users[lo:lo + chunk]
        s = F[torch.from_numpy(us)] @ items.T  # (chunk, I)
        rr, cc = [], []
        for r, u in enumerate(us):
            ex = exclude[u]
            rr.append(np.full(len(ex), r))
            cc.append(ex)
        if rr:
            rr = np.concatenate(rr)
            cc = np.concatenate(cc)
            s[torch.from_numpy(rr), torch.from_numpy(cc)] = -math.inf
        t = s[torch.arange(len(us)), torch.from_numpy(targets[lo:lo + chunk])]
        ranks[lo:lo + len(us)] = (s >= t[:, None]).sum(dim=1).numpy()
    return ranks


def metrics(ranks, ks=(10, 20, 30)):
    out = {'users': int(len(ranks)), 'hr': {}, 'ndcg': {}}
    for k in ks:
        hit = ranks <= k
        out['hr'][str(k)] = float(hit.mean()) if len(ranks) else 0.0
        out['ndcg'][str(k)] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()) if len(ranks) else 0.0
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('split_dir')
    p.add_argument('--epochs', type=int, default=300)
    p.add_argument('--batch-size', type=int, default=2048)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--l2', type=float, default=1e-4)
    p.add_argument('--dim', type=int, default=64)
    p.add_argument('--layers', type=int, default=3)
    p.add_argument('--init-std', type=float, default=0.1)
    p.add_argument('--eval-every', type=int, default=5)
    p.add_argument('--patience', type=int, default=5)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed + 1)

    meta = json.load(open(os.path.join(a.split_dir, 'meta.json')))
    if meta.get('format') != 'tokenrec-split/1':
        sys.exit(f"{a.split_dir}: not a tokenrec split directory (format {meta.get('format')!r})")
    U, I = meta['users'], meta['items']
    held_out = np.zeros(U, dtype=bool)
    held_out[np.asarray(meta['unseenUsers'], dtype=np.int64)] = True
    train = read_pairs(os.path.join(a.split_dir, 'train.tsv'))
    tu, ti = train[:, 0].copy(), train[:, 1].copy()
    assert not held_out[tu].any(), 'train.tsv holds a held-out user'
    train_keys = np.unique(tu * I + ti)
    assert len(train_keys) == len(tu), 'train.tsv has repeated (user, item) pairs'
    train_items = [np.zeros(0, dtype=np.int64)] * U
    order = np.argsort(tu, kind='stable')
    bounds = np.searchsorted(tu[order], np.arange(U + 1))
    for u in range(U):
        train_items[u] = ti[order[bounds[u]:bounds[u + 1]]]
    valid_t = np.full(U, -1, dtype=np.int64)
    test_t = np.full(U, -1, dtype=np.int64)
    for name, arr in (('valid.tsv', valid_t), ('test.tsv', test_t)):
        pr = read_pairs(os.path.join(a.split_dir, name))
        arr[pr[:, 0]] = pr[:, 1]

    def eval_inputs(which):
        tgt = valid_t if which == 'valid' else test_t
        users = np.nonzero((tgt >= 0) & ~held_out)[0]
        if which == 'valid':
            exclude = train_items
        else:
            exclude = [np.append(train_items[u], valid_t[u]) if valid_t[u] >= 0 else train_items[u] for u in range(U)]
        return users, tgt[users], exclude

    valid_in = eval_inputs('valid')
    test_in = eval_inputs('test')

    # Most-popular on the same split and the same ranking code (a check of the evaluation).
    pop = torch.from_numpy(np.bincount(ti, minlength=I).astype(np.float32))
    pop_F = torch.cat([torch.ones(U, 1), pop[:, None]])
    pop_test = metrics(rank_targets(pop_F, U, *test_in))

    A = build_adjacency(U, I, tu, ti)
    N = U + I
    E = torch.nn.Parameter(torch.randn(N, a.dim, generator=torch.Generator().manual_seed(a.seed)) * a.init_std)
    opt = torch.optim.Adam([E], lr=a.lr)
    n = len(tu)
    print(f'{meta["dataset"]}: {U} users, {I} items, {n} training interactions, {a.layers} layers, '
          f'batch {a.batch_size}, lr {a.lr}, torch {torch.__version__}, {torch.get_num_threads()} threads', file=sys.stderr)

    best = (-1.0, 0, None)  # (valid NDCG@20, epoch, final vectors)
    bad_evals = 0
    train_seconds = 0.0
    epochs_run = 0
    history = []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).numpy()
        eu, ep = tu[perm], ti[perm]
        en = sample_negatives(eu, U, I, train_keys, gen)
        eu_t, ep_t, en_t = torch.from_numpy(eu), torch.from_numpy(U + ep), torch.from_numpy(U + en)
        bpr_sum = reg_sum = 0.0
        batches = 0
        for lo in range(0, n, a.batch_size):
            bu, bp, bn = eu_t[lo:lo + a.batch_size], ep_t[lo:lo + a.batch_size], en_t[lo:lo + a.batch_size]
            B = len(bu)
            F = propagate(A, E, a.layers)
            fu = F[bu]
            x = (fu * F[bn]).sum(1) - (fu * F[bp]).sum(1)
            bpr = torch.nn.functional.softplus(x).mean()
            reg = 0.5 * (E[bu].pow(2).sum() + E[bp].pow(2).sum() + E[bn].pow(2).sum()) / B
            loss = bpr + a.l2 * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
            bpr_sum += bpr.item()
            reg_sum += reg.item()
            batches += 1
        dt = time.perf_counter() - t0
        train_seconds += dt
        epochs_run = epoch
        rec = {'epoch': epoch, 'loss': bpr_sum / batches, 'reg': reg_sum / batches, 'seconds': dt}
        if epoch % a.eval_every == 0 or epoch == a.epochs:
            with torch.no_grad():
                F = propagate(A, E, a.layers)
            nd = metrics(rank_targets(F, U, *valid_in), ks=(20,))['ndcg']['20']
            rec['validNdcg20'] = nd
            if nd > best[0]:
                best = (nd, epoch, F.clone())
                bad_evals = 0
            else:
                bad_evals += 1
            print(f'  epoch {epoch}: loss {rec["loss"]:.4f} reg {rec["reg"]:.3f} valid NDCG@20 {nd:.4f} '
                  f'(best epoch {best[1]}) {dt:.2f} s/epoch', file=sys.stderr)
        history.append(rec)
        if bad_evals >= a.patience:
            break
    F = best[2]
    out = {
        'implementation': 'scripts/reference/lightgcn_torch.py',
        'dataset': meta['dataset'],
        'config': {k: getattr(a, k) for k in ('epochs', 'batch_size', 'lr', 'l2', 'dim', 'layers', 'init_std', 'eval_every', 'patience', 'seed', 'threads')},
        'bestEpoch': best[1],
        'epochsRun': epochs_run,
        'secondsPerEpoch': train_seconds / max(1, epochs_run),
        'valid': metrics(rank_targets(F, U, *valid_in)),
        'test': metrics(rank_targets(F, U, *test_in)),
        'mostPopularTest': pop_test,
        'history': history,
    }
    print(json.dumps(out))


if __name__ == '__main__':
    main()
