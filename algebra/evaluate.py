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

from functools import lru_cache

import numpy as np

from optinv.algebra.cartesian import LEVI_CIVITA, coefficient_map
from optinv.algebra.errors import OptinvError
from optinv.algebra.graphs import EPS_RANK, ContractionGraph
from optinv.algebra.signature import EPSILON, Signature

PRIME = 16777213  # largest prime below 2**24: a product of two residues fits 48 bits
_CHUNK = 1 << 14  # terms summed before reducing: 2**48 * 2**14 < 2**63


def check_rows(x, signature: Signature, name: str = "x") -> np.ndarray:
    """Validate rows ``(N, D)`` of float coefficients and return them as a float array."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise OptinvError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != signature.dim:
        raise OptinvError(f"{name}: expected shape (N, {signature.dim}), got {arr.shape}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _node_tensors(graph: ContractionGraph, tensors: dict[str, np.ndarray], eps):
    return [eps if lab == EPSILON else tensors[lab] for lab in graph.labels]


def _split(x: np.ndarray, signature: Signature) -> dict[str, np.ndarray]:
    out = {}
    for spec, sl in zip(signature.tensors, signature.slices().values()):
        cmap = coefficient_map(spec.rank).astype(x.dtype)
        out[spec.name] = np.tensordot(x[:, sl], np.moveaxis(cmap, -1, 0), axes=([1], [0]))
    return out


@lru_cache(maxsize=4096)
def _path(subscripts: str, shapes: tuple[tuple[int, ...], ...]):
    dummies = [np.empty(s) for s in shapes]
    strategy = "optimal" if len(shapes) <= 6 else "greedy"
    return np.einsum_path(subscripts, *dummies, optimize=strategy)[0]  # ['einsum_path', (i, j), ...]


def _einsum(subscripts: str, operands) -> np.ndarray:
    # The path does not depend on the batch size; cache it for a representative one.
    inputs = subscripts.split("->")[0].split(",")
    shapes = tuple(
        ((min(op.shape[0], 64),) + op.shape[1:]) if sub.startswith("...") else op.shape
        for sub, op in zip(inputs, operands)
    )
    path = _path(subscripts, shapes)
    return np.einsum(subscripts, *operands, optimize=path)


def _batched_subscripts(graph: ContractionGraph, skip: int | None = None) -> str:
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
    tensors = _split(x, signature)
    eps = LEVI_CIVITA.astype(x.dtype)
    out = np.empty((x.shape[0], len(graphs)), dtype=x.dtype)
    for k, g in enumerate(graphs):
        if g.n_nodes == 1:
            out[:, k] = tensors[g.labels[0]]
            continue
        out[:, k] = _einsum(_batched_subscripts(g), _node_tensors(g, tensors, eps))
    return out


def gradient(graphs, x, signature: Signature) -> np.ndarray:
    """Jacobian ``(N, K, D)`` of the graphs with respect to the coefficients, float reference."""
    x = check_rows(x, signature)
    tensors = _split(x, signature)
    eps = LEVI_CIVITA.astype(x.dtype)
    slices = signature.slices()
    jac = np.zeros((x.shape[0], len(graphs), signature.dim), dtype=x.dtype)
    for k, g in enumerate(graphs):
        ops = _node_tensors(g, tensors, eps)
        for node, lab in enumerate(g.labels):
            if lab == EPSILON:
                continue
            rank = signature.tensor(lab).rank
            if g.n_nodes == 1:
                jac[:, k, slices[lab]] += 1.0
                continue
            env = _einsum(_batched_subscripts(g, skip=node), [o for i, o in enumerate(ops) if i != node])
            cmap = coefficient_map(rank).astype(x.dtype).reshape(-1, 2 * rank + 1)
            jac[:, k, slices[lab]] += env.reshape(x.shape[0], -1) @ cmap
    return jac


# -- exact evaluation modulo a prime -------------------------------------------


def matmul_mod(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """``a @ b mod p`` for int64 residues (2-d, or batched 3-d), reducing every :data:`_CHUNK` terms."""
    k = a.shape[-1]
    out = np.zeros(a.shape[:-1] + b.shape[-1:], dtype=np.int64)
    for start in range(0, k, _CHUNK):
        out = (out + a[..., start : start + _CHUNK] @ b[..., start : start + _CHUNK, :]) % p
    return out


def _merge_mod(sa: str, a: np.ndarray, sb: str, b: np.ndarray, later: set, p: int):
    """Contract two batched residue tensors ``(P, 3, ..., 3)`` over shared indices not needed later."""
    shared = [c for c in sa if c in sb and c not in later]
    keep_a = [c for c in sa if c not in shared]
    keep_b = [c for c in sb if c not in shared]
    n = a.shape[0]
    a2 = np.einsum(f"...{sa}->...{''.join(keep_a + shared)}", a).reshape(n, 3 ** len(keep_a), 3 ** len(shared))
    b2 = np.einsum(f"...{sb}->...{''.join(shared + keep_b)}", b).reshape(n, 3 ** len(shared), 3 ** len(keep_b))
    res = matmul_mod(a2, b2, p).reshape((n,) + (3,) * (len(keep_a) + len(keep_b)))
    return "".join(keep_a + keep_b), res


def contract_mod(inputs: list[str], output: str, operands: list[np.ndarray], p: int = PRIME,
                 batched: bool = False) -> np.ndarray:
    """Exact ``einsum(inputs -> output)`` of int64 residues modulo ``p``.

    Every index appears in exactly two places (inputs or output), as in a
    contraction graph; pairs are merged in NumPy's optimised order.  With
    ``batched=True`` every operand has a leading axis of points (constants such
    as the Levi-Civita symbol are broadcast), and so has the result.
    """
    if not batched:
        return contract_mod(inputs, output, [op[None] for op in operands], p, batched=True)[0]
    n = max(op.shape[0] for op, sub in zip(operands, inputs) if op.ndim == len(sub) + 1)
    operands = [op if op.ndim == len(sub) + 1 else np.broadcast_to(op, (n,) + op.shape)
                for op, sub in zip(operands, inputs)]
    subs = ",".join(inputs) + "->" + output
    if len(operands) == 1:
        return np.einsum(f"...{inputs[0]}->...{output}", operands[0]) % p
    path = _path(subs, tuple(op.shape[1:] for op in operands))
    ops = list(zip(inputs, operands))
    for group in path[1:]:
        picked = [ops[i] for i in group]
        for i in sorted(group, reverse=True):
            ops.pop(i)
        (sa, a) = picked[0]
        for n_merged, (sb, b) in enumerate(picked[1:], start=2):
            later = set(output).union(*(s for s, _ in ops), *(s for s, _ in picked[n_merged:]))
            sa, a = _merge_mod(sa, a, sb, b, later, p)
        ops.append((sa, a))
    (s_final, final), = ops
    return np.einsum(f"...{s_final}->...{output}", final) % p


def exact_tensors(x_int: np.ndarray, signature: Signature, p: int = PRIME) -> dict[str, np.ndarray]:
    """Cartesian tensors of an integer row ``(D,)`` (or rows ``(P, D)``), as residues modulo ``p``."""
    x_int = np.asarray(x_int, dtype=np.int64) % p
    out = {}
    for spec, sl in zip(signature.tensors, signature.slices().values()):
        cmap = np.moveaxis(coefficient_map(spec.rank), -1, 0)
        out[spec.name] = np.tensordot(x_int[..., sl], cmap, axes=([-1], [0])) % p
    return out


def exact_values_and_gradients(graph: ContractionGraph, tensors: dict[str, np.ndarray], signature: Signature,
                               p: int = PRIME) -> tuple[np.ndarray, np.ndarray]:
    """Values ``(P,)`` and gradients ``(P, D)`` of one graph at ``P`` integer points, modulo ``p``.

    ``tensors`` comes from :func:`exact_tensors` of rows ``(P, D)``: every
    tensor has a leading axis of points.
    """
    eps = LEVI_CIVITA % p
    ops = _node_tensors(graph, tensors, eps)
    n_points = next(iter(tensors.values())).shape[0]
    slices = signature.slices()
    grad = np.zeros((n_points, signature.dim), dtype=np.int64)
    if graph.n_nodes == 1:
        grad[:, slices[graph.labels[0]]] = 1
        return ops[0] % p, grad
    values = contract_mod(list(graph.subscripts), "", ops, p, batched=True)
    for node, lab in enumerate(graph.labels):
        if lab == EPSILON:
            continue
        rank = signature.tensor(lab).rank
        others = [i for i in range(graph.n_nodes) if i != node]
        env = contract_mod([graph.subscripts[i] for i in others], graph.subscripts[node], [ops[i] for i in others],
                           p, batched=True)
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
    ops = _node_tensors(graph, tensors, eps)
    if graph.n_nodes == 1:
        return int(ops[0]) % p
    return int(contract_mod(list(graph.subscripts), "", ops, p))


def random_integer_point(signature: Signature, rng: np.random.Generator, p: int = PRIME) -> np.ndarray:
    """A uniformly random point of ``(Z/p)^D`` (generic with probability ~1 - deg/p)."""
    return rng.integers(0, p, size=signature.dim, dtype=np.int64)


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
