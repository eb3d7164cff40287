#!/usr/bin/python3
"""Replays scripts/reference/native_parity.mjs's two cases with the functions of
lightgcn_torch.py (same adjacency, propagation, loss and torch.optim.Adam) and reports the
largest differences; exits 1 when one is above tolerance.

  /usr/bin/python3 scripts/reference/parity_torch.py /tmp/parity.json
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lightgcn_torch import build_adjacency, propagate  # noqa: E402

torch.set_num_threads(1)
j = json.load(open(sys.argv[1]))
D, L = j['dim'], j['layers']
ok = True


def report(name, got, want, tol):
    global ok
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = float(np.max(np.abs(got - want) / (np.abs(want) + 1e-3)))
    status = 'ok' if err <= tol else 'MISMATCH'
    ok &= err <= tol
    print(f'{name}: max relative difference {err:.2e} (tolerance {tol:.0e}) {status}')


def pairs(rows):
    u = np.array([a for a, r in enumerate(rows) for _ in r], dtype=np.int64)
    i = np.array([x for r in rows for x in r], dtype=np.int64)
    return u, i


# A: propagation of given ego embeddings.
p = j['propagation']
U, I = p['users'], p['items']
u, i = pairs(p['rows'])
A = build_adjacency(U, I, u, i)
E = torch.tensor(p['ego'], dtype=torch.float32).reshape(U + I, D)
report('A. final vectors (propagation)', propagate(A, E, L).numpy().ravel(), p['final'], 1e-5)

# B: full-batch training with forced negatives.
t = j['training']
U, I = t['users'], t['items']
u, i = pairs(t['rows'])
n = np.array([x % I for x in u], dtype=np.int64)
A = build_adjacency(U, I, u, i)
E = torch.nn.Parameter(torch.tensor(t['ego0'], dtype=torch.float32).reshape(U + I, D))
opt = torch.optim.Adam([E], lr=t['lr'])
bu, bp, bn = torch.from_numpy(u), torch.from_numpy(U + i), torch.from_numpy(U + n)
B = len(u)
bprs, regs = [], []
for step in range(t['steps']):
    F = propagate(A, E, L)
    x = (F[bu] * F[bn]).sum(1) - (F[bu] * F[bp]).sum(1)
    bpr = torch.nn.functional.softplus(x).mean()
    reg = 0.5 * (E[bu].pow(2).sum() + E[bp].pow(2).sum() + E[bn].pow(2).sum()) / B
    loss = bpr + t['lambda'] * reg
    opt.zero_grad()
    loss.backward()
    opt.step()
    bprs.append(bpr.item())
    regs.append(reg.item())
report('B. BPR loss per step', bprs, t['bpr'], 1e-4)
report('B. L2 term per step', regs, t['reg'], 1e-4)
report(f'B. ego embeddings after {t["steps"]} Adam steps', E.detach().numpy().ravel(), t['egoAfter'], 1e-3)
print(f'first / last BPR loss: {bprs[0]:.5f} / {bprs[-1]:.5f} (native {t["bpr"][0]:.5f} / {t["bpr"][-1]:.5f})')
sys.exit(0 if ok else 1)
