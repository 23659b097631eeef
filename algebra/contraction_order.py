"""Contraction order: in which pairs to contract a graph's tensors.

Two uses, one module:

* :func:`cheapest_merges`: the dynamic programme over node subsets that gives a
  graph's cost (:attr:`~optinv.algebra.graphs.ContractionGraph.cost`) and the
  pairwise merge sequence the code generator follows;
* :func:`einsum_path`: NumPy's optimised path for an ``einsum`` (float
  reference and exact modular contraction), cached per subscripts and shapes.

>>> cheapest_merges([[0, 2], [2, 0]])  # two rank-2 tensors fully contracted: 3**2 multiply-adds
(9, [(1, 2)])
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def cheapest_merges(mult) -> tuple[int, list[tuple[int, int]]]:
    """Cost and merge sequence (pairs of node-subset bitmasks) of the cheapest pairwise contraction.

    Merging parts A and B costs ``3**(open(A|B) + shared(A, B))`` multiply-adds,
    where ``open`` counts edges leaving a part and ``shared`` edges between
    parts; ties keep the first split found, so the result is deterministic.
    """
    n = len(mult)
    if n == 1:
        return 1, []
    full = (1 << n) - 1
    open_edges = [0] * (full + 1)
    for S in range(1, full + 1):
        open_edges[S] = sum(mult[a][b] for a in range(n) if S >> a & 1 for b in range(n) if not S >> b & 1)
    best = [0] * (full + 1)
    split = [0] * (full + 1)
    for S in range(1, full + 1):
        if S & (S - 1) == 0:
            continue
        low = S & -S
        cheapest = None
        A = (S - 1) & S
        while A:
            if A & low:  # each split once
                B = S ^ A
                shared = (open_edges[A] + open_edges[B] - open_edges[S]) // 2
                c = best[A] + best[B] + 3 ** (open_edges[S] + shared)
                if cheapest is None or c < cheapest:
                    cheapest, split[S] = c, A
            A = (A - 1) & S
        best[S] = cheapest
    merges: list[tuple[int, int]] = []

    def walk(S: int) -> None:
        if S & (S - 1) == 0:
            return
        A = split[S]
        walk(A)
        walk(S ^ A)
        merges.append((A, S ^ A))

    walk(full)
    return best[full], merges


@lru_cache(maxsize=8192)
def einsum_path(subscripts: str, shapes: tuple[tuple[int, ...], ...]) -> list:
    """NumPy's contraction path (``['einsum_path', (i, j), ...]``): optimal up to 6 operands, else greedy."""
    dummies = [np.empty(s) for s in shapes]
    strategy = "optimal" if len(shapes) <= 6 else "greedy"
    return np.einsum_path(subscripts, *dummies, optimize=strategy)[0]
