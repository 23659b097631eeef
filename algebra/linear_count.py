"""Linear dimension of the invariants of each degree, by evaluating contraction products.

An independent check of :mod:`optinv.algebra.molien`: every invariant polynomial
of degree ``nu`` is a linear combination of products of connected contraction
graphs whose degrees sum to ``nu`` (the first fundamental theorem of invariant
theory for O(3): complete contractions with ``delta``; for SO(3) also with one
Levi-Civita symbol, a product of two of them being a ``delta`` expression).  So
the dimension equals the rank of the matrix of values of *all* such products
(connected and disconnected graphs) at enough points.

The values are exact: integer points, everything modulo the prime
:data:`~optinv.algebra.modular.PRIME`.  A modular rank never exceeds the rank
over the rationals, so each count here is a *certified lower bound* on the
dimension of the span of the products; where it equals the Molien-Weyl number
(an exact upper bound for any set of invariants) the two proofs meet and the
products provably span every invariant.

Parity: a graph changes sign under the inversion by the product of its tensors'
parities (the Levi-Civita symbol is a fixed numeric tensor and contributes no
sign of its own), so for O(3) the products kept are those of total parity +1,
whatever mixture of ``eps``-graphs they contain; for SO(3) all products count.

>>> from optinv.algebra.signature import Signature
>>> product_span_dimensions(Signature.from_l_max(1), 4).dimensions
[1, 1, 2, 2, 3]
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from optinv.algebra.cartesian import LEVI_CIVITA
from optinv.algebra.candidates import graphs_of_degree
from optinv.algebra.errors import OptinvError
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.group import SO3
from optinv.algebra.modular import PRIME, contract_mod, exact_tensors, modular_rank
from optinv.algebra.signature import EPSILON, Signature, normalise_group



# -- batched exact evaluation ----------------------------------------------------


def values_mod(graphs, points: np.ndarray, signature: Signature, p: int = PRIME) -> np.ndarray:
    """Exact values ``(len(graphs), K)`` of connected graphs at integer rows ``(K, D)``, mod ``p``.

    >>> from optinv.algebra.signature import Signature
    >>> sig = Signature.from_l_max(1)
    >>> g = ContractionGraph.from_einsum("i,i->,v,v", sig)
    >>> values_mod([g], np.array([[5, 1, 2, 2], [0, 0, 0, 3]]), sig).tolist()
    [[9, 9]]
    """
    points = np.asarray(points, dtype=np.int64)
    if points.ndim != 2 or points.shape[1] != signature.dim:
        raise OptinvError(f"points: expected shape (K, {signature.dim}), got {points.shape}")
    n = points.shape[0]
    tensors = exact_tensors(points, signature, p)  # each (K, 3, ..., 3)
    eps = LEVI_CIVITA % p
    out = np.empty((len(graphs), n), dtype=np.int64)
    for row, g in enumerate(graphs):
        if g.n_nodes == 1:
            out[row] = tensors[g.labels[0]]
            continue
        ops = [eps if lab == EPSILON else tensors[lab] for lab in g.labels]
        out[row] = contract_mod(list(g.subscripts), "", ops, p, batched=[lab != EPSILON for lab in g.labels])
    return out


# -- products of connected graphs -------------------------------------------------------


def _lifted(signature: Signature) -> Signature:
    """The same tensors under SO(3): every connected graph, pseudoscalars included."""
    return Signature(signature.tensors, SO3, signature.convention, aliases=signature.aliases)


def product_terms(degrees: list[int], nu: int):
    """Multisets (non-decreasing index tuples) of items whose ``degrees`` sum to ``nu``.

    >>> list(product_terms([1, 1, 2], 2))
    [(0, 0), (0, 1), (1, 1), (2,)]
    """
    m = len(degrees)

    def rec(start: int, left: int, acc: list[int]):
        if left == 0:
            yield tuple(acc)
            return
        for i in range(start, m):
            if degrees[i] <= left:
                acc.append(i)
                yield from rec(i, left - degrees[i], acc)
                acc.pop()

    yield from rec(0, nu, [])


@dataclass(frozen=True)
class LinearCount:
    """Ranks of the evaluated contraction products of each degree (index = degree)."""

    signature: Signature
    group: str
    dimensions: list[int]  # certified (modular) rank of the products, per degree
    n_connected: list[int]  # connected graphs of each degree (both parities, before filtering)
    n_products: list[int]  # products of the right parity evaluated at each degree
    n_points: int  # random integer points used (more than every rank)
    prime: int
    seed: int

    def to_dict(self) -> dict:
        return {
            "signature": self.signature.to_dict(),
            "group": self.group,
            "dimensions": self.dimensions,
            "n_connected": self.n_connected,
            "n_products": self.n_products,
            "n_points": self.n_points,
            "prime": self.prime,
            "seed": self.seed,
        }


def product_span_dimensions(signature: Signature, nu_max: int, group: str | None = None, seed: int = 0,
                            n_points: int | None = None) -> LinearCount:
    """Rank of all degree-``nu`` products of connected invariants, ``nu = 0..nu_max``, exactly mod p.

    The products are evaluated at ``n_points`` random integer points (by
    default 32, doubled until every rank is below the number of points, so no
    rank is capped by too few points).  ``group`` defaults to the signature's.

    >>> from optinv.algebra.signature import Signature
    >>> product_span_dimensions(Signature.parse("a:1,b:1,c:1"), 3, "SO3").dimensions
    [1, 0, 6, 1]
    """
    if not isinstance(nu_max, int) or isinstance(nu_max, bool) or nu_max < 0:
        raise OptinvError(f"nu_max: expected an integer >= 0, got {nu_max!r}")
    group = normalise_group(signature.group if group is None else group)
    lifted = _lifted(signature)
    graphs: list[ContractionGraph] = []
    n_connected = [0]
    for d in range(1, nu_max + 1):
        found = graphs_of_degree(lifted, d)
        n_connected.append(len(found))
        graphs += found
    degrees = [g.degree for g in graphs]
    parities = [g.parity(signature) for g in graphs]
    terms = []
    for nu in range(1, nu_max + 1):
        keep = []
        for t in product_terms(degrees, nu):
            if not group.keeps(int(np.prod([parities[i] for i in t]))):
                continue
            keep.append(t)
        terms.append(keep)
    k = 32 if n_points is None else int(n_points)
    rng = np.random.default_rng(seed)
    while True:
        points = rng.integers(0, PRIME, size=(k, signature.dim), dtype=np.int64)
        vals = values_mod(graphs, points, signature) if graphs else np.zeros((0, k), dtype=np.int64)
        dims = [1]
        for keep in terms:
            if not keep:
                dims.append(0)
                continue
            mat = np.ones((len(keep), k), dtype=np.int64)
            for row, t in enumerate(keep):
                for i in t:
                    mat[row] = mat[row] * vals[i] % PRIME
            dims.append(modular_rank(mat))
        if max(dims) < k or n_points is not None:
            break
        k *= 2
    return LinearCount(signature, group, dims, n_connected, [1] + [len(t) for t in terms], k, PRIME, seed)


__all__ = [
    "LinearCount",
    "product_span_dimensions",
    "product_terms",
    "values_mod",
]
