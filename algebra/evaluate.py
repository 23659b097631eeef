"""Evaluating contraction graphs: a float reference for batches, and exact modular values.

* :func:`evaluate` / :func:`gradient`: NumPy ``einsum`` with an optimised
  contraction path over batches of rows ``(N, D)``; the reference that every
  generated kernel is checked against.
* :func:`exact_value_and_gradient`: values and gradients at one integer point,
  exactly, as integers modulo the prime :data:`PRIME`.  Used for rank
  certificates.

>>> import numpy as np
>>> from optinv.algebra.signature import Signature
>>> from optinv.algebra.graphs import ContractionGraph
>>> sig = Signature.from_l_max(1)
>>> g = ContractionGraph.from_einsum("i,i->,v,v", sig)
>>> evaluate([g], np.array([[0.0, 1.0, 2.0, 2.0]]), sig)
array([[9.]])
"""

from __future__ import annotations

import numpy as np

from optinv.algebra.cartesian import LEVI_CIVITA, coefficient_map, tensors_of_rows
from optinv.algebra.contraction_order import einsum_path
from optinv.algebra.errors import OptinvError
from optinv.algebra.graphs import EPS_RANK, ContractionGraph
from optinv.algebra.modular import PRIME, contract_mod, exact_tensors, matmul_mod, random_integer_point
from optinv.algebra.signature import EPSILON, Signature



def check_rows(x, signature: Signature, name: str = "x") -> np.ndarray:
    """Validate rows ``(N, D)`` of float coefficients and return them as a float array."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise OptinvError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != signature.dim:
        raise OptinvError(f"{name}: expected shape (N, {signature.dim}), got {arr.shape}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def node_operands(graph: ContractionGraph, tensors: dict[str, np.ndarray], eps):
    """The operand of each node of ``graph``: its input tensor, or ``eps`` for a Levi-Civita node."""
    return [eps if lab == EPSILON else tensors[lab] for lab in graph.labels]


def batched_einsum(subscripts: str, operands) -> np.ndarray:
    """``np.einsum`` over a batch of rows (``...``), with the contraction path cached per shape."""
    # The path does not depend on the batch size; cache it for a representative one.
    inputs = subscripts.split("->")[0].split(",")
    shapes = tuple(
        ((min(op.shape[0], 64),) + op.shape[1:]) if sub.startswith("...") else op.shape
        for sub, op in zip(inputs, operands)
    )
    path = einsum_path(subscripts, shapes)
    return np.einsum(subscripts, *operands, optimize=path)


def batched_subscripts(graph: ContractionGraph, skip: int | None = None) -> str:
    """Einsum subscripts of ``graph`` over a batch of rows; ``skip``: leave that node out (its environment)."""
    parts = []
    for node, (lab, sub) in enumerate(zip(graph.labels, graph.subscripts)):
        if node == skip:
            continue
        parts.append(sub if lab == EPSILON else "..." + sub)
    out = "..." + (graph.subscripts[skip] if skip is not None else "")
    return ",".join(parts) + "->" + out


def evaluate(graphs, x, signature: Signature) -> np.ndarray:
    """Values ``(N, K)`` of the graphs on rows ``x`` ``(N, D)``, float reference."""
    x = check_rows(x, signature)
    tensors = tensors_of_rows(x, signature)
    eps = LEVI_CIVITA.astype(x.dtype)
    out = np.empty((x.shape[0], len(graphs)), dtype=x.dtype)
    for k, g in enumerate(graphs):
        if g.n_nodes == 1:
            out[:, k] = tensors[g.labels[0]]
            continue
        out[:, k] = batched_einsum(batched_subscripts(g), node_operands(g, tensors, eps))
    return out


def gradient(graphs, x, signature: Signature) -> np.ndarray:
    """Jacobian ``(N, K, D)`` of the graphs with respect to the coefficients, float reference."""
    x = check_rows(x, signature)
    tensors = tensors_of_rows(x, signature)
    eps = LEVI_CIVITA.astype(x.dtype)
    slices = signature.slices()
    jac = np.zeros((x.shape[0], len(graphs), signature.dim), dtype=x.dtype)
    for k, g in enumerate(graphs):
        ops = node_operands(g, tensors, eps)
        for node, lab in enumerate(g.labels):
            if lab == EPSILON:
                continue
            rank = signature.tensor(lab).rank
            if g.n_nodes == 1:
                jac[:, k, slices[lab]] += 1.0
                continue
            env = batched_einsum(batched_subscripts(g, skip=node), [o for i, o in enumerate(ops) if i != node])
            cmap = coefficient_map(rank).astype(x.dtype).reshape(-1, 2 * rank + 1)
            jac[:, k, slices[lab]] += env.reshape(x.shape[0], -1) @ cmap
    return jac


# -- exact evaluation modulo a prime -------------------------------------------


def exact_values_and_gradients(graph: ContractionGraph, tensors: dict[str, np.ndarray], signature: Signature,
                               p: int = PRIME) -> tuple[np.ndarray, np.ndarray]:
    """Values ``(P,)`` and gradients ``(P, D)`` of one graph at ``P`` integer points, modulo ``p``.

    ``tensors`` comes from :func:`exact_tensors` of rows ``(P, D)``: every
    tensor has a leading axis of points.
    """
    eps = LEVI_CIVITA % p
    ops = node_operands(graph, tensors, eps)
    batched = [lab != EPSILON for lab in graph.labels]
    n_points = next(iter(tensors.values())).shape[0]
    slices = signature.slices()
    grad = np.zeros((n_points, signature.dim), dtype=np.int64)
    if graph.n_nodes == 1:
        grad[:, slices[graph.labels[0]]] = 1
        return ops[0] % p, grad
    values = contract_mod(list(graph.subscripts), "", ops, p, batched)
    for node, lab in enumerate(graph.labels):
        if lab == EPSILON:
            continue
        rank = signature.tensor(lab).rank
        others = [i for i in range(graph.n_nodes) if i != node]
        env = contract_mod([graph.subscripts[i] for i in others], graph.subscripts[node], [ops[i] for i in others],
                           p, [batched[i] for i in others])
        cmap = coefficient_map(rank).reshape(-1, 2 * rank + 1) % p
        grad[:, slices[lab]] = (grad[:, slices[lab]] + matmul_mod(env.reshape(n_points, -1), cmap, p)) % p
    return values, grad


def exact_value_and_gradient(graph: ContractionGraph, tensors: dict[str, np.ndarray], signature: Signature, p: int = PRIME):
    """Value and gradient ``(D,)`` of one graph at one integer point, modulo ``p``, exactly."""
    values, grads = exact_values_and_gradients(graph, {k: v[None] for k, v in tensors.items()}, signature, p)
    return int(values[0]), grads[0]


def exact_value(graph: ContractionGraph, tensors: dict[str, np.ndarray], p: int = PRIME) -> int:
    """Value of one graph at an integer point, modulo ``p``."""
    eps = LEVI_CIVITA % p
    ops = node_operands(graph, tensors, eps)
    if graph.n_nodes == 1:
        return int(ops[0]) % p
    return int(contract_mod(list(graph.subscripts), "", ops, p))


__all__ = [
    "PRIME",
    "check_rows",
    "evaluate",
    "gradient",
    "contract_mod",
    "exact_tensors",
    "exact_value",
    "exact_value_and_gradient",
    "exact_values_and_gradients",
    "random_integer_point",
    "EPS_RANK",
]
