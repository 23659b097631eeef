"""optinv's NumPy einsum reference evaluator as a peer, with a vjp that never forms the Jacobian.

``forward`` is :func:`optinv.algebra.evaluate.evaluate` as it is.  For the
backward, :func:`optinv.algebra.evaluate.gradient` builds the full ``(N, K, D)``
Jacobian, which is not what a user after ``g . dI/dx`` would do (and needs
gigabytes at 10^6 rows), so :func:`vjp` uses the same einsum machinery (the
environment of every factor, contracted with the coefficient map) but weights
each invariant's environments by ``g[:, k]`` and accumulates straight into
``(N, D)``.  Single-threaded (NumPy's einsum does not thread; the harness pins
OpenBLAS to one thread before NumPy is imported).

>>> import numpy as np
>>> from optinv.algebra.signature import Signature
>>> from optinv.algebra.graphs import ContractionGraph
>>> sig = Signature.from_l_max(1)
>>> gr = [ContractionGraph.from_einsum("i,i->,v,v", sig)]
>>> vjp(gr, np.array([[0.0, 1.0, 2.0, 2.0]]), np.array([[0.5]]), sig)
array([[0., 1., 2., 2.]])
"""

from __future__ import annotations

import numpy as np

from optinv.algebra import evaluate as _ev
from optinv.algebra.cartesian import LEVI_CIVITA, coefficient_map, tensors_of_rows
from optinv.algebra.signature import EPSILON, Signature


def forward(graphs, x, signature: Signature) -> np.ndarray:
    return _ev.evaluate(graphs, x, signature)


def vjp(graphs, x, g, signature: Signature) -> np.ndarray:
    """``sum_k g[:, k] * dI_k/dx`` ``(N, D)`` by einsum environments, without the ``(N, K, D)`` Jacobian."""
    x = _ev.check_rows(x, signature)
    g = np.asarray(g, dtype=x.dtype)
    if g.shape != (x.shape[0], len(graphs)):
        raise ValueError(f"g: expected shape ({x.shape[0]}, {len(graphs)}), got {g.shape}")
    tensors = tensors_of_rows(x, signature)
    eps = LEVI_CIVITA.astype(x.dtype)
    slices = signature.slices()
    n = x.shape[0]
    out = np.zeros((n, signature.dim), dtype=x.dtype)
    for k, gr in enumerate(graphs):
        ops = _ev.node_operands(gr, tensors, eps)
        gk = g[:, k : k + 1]
        for node, lab in enumerate(gr.labels):
            if lab == EPSILON:
                continue
            if gr.n_nodes == 1:
                out[:, slices[lab]] += gk
                continue
            rank = signature.tensor(lab).rank
            env = _ev.batched_einsum(_ev.batched_subscripts(gr, skip=node), [o for i, o in enumerate(ops) if i != node])
            cmap = coefficient_map(rank).astype(x.dtype).reshape(-1, 2 * rank + 1)
            out[:, slices[lab]] += (gk * env.reshape(n, -1)) @ cmap
    return out
