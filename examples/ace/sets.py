"""Descriptor sets on the ACE channel signature: the full linear basis and the independent subset.

The signature has ``n_rad`` channels of every rank ``l = 0..l_max``
(``Signature.channels``: ``s0..s{n-1}, v0.., q0.., t0..``), one row of
``D = n_rad * (l_max+1)**2`` coefficients per atom: the atomic base ``A_{n,l}``.

* :func:`linear_ace_set`: the full linear ACE basis up to degree ``nu_max``: all products of
  connected contraction graphs whose degrees sum to ``nu`` (``nu = 1..nu_max``), reduced to a
  maximal linearly independent subset by an exact rank test (values at random integer points
  modulo a prime).  Polynomials of different degree are linearly independent, so the test
  runs degree by degree.  Within a degree, products with more factors come first (they cost
  a multiplication once their factors exist), so a connected graph is only kept when it is
  not a linear combination of products (e.g. ``tr(q^4) = (tr q^2)^2 / 2`` keeps the product).
* :func:`independent_set`: the functionally independent subset from
  :func:`optinv.algebra.select.select_basis`.

Both return a :class:`DescriptorSet`: the connected graphs a backend has to evaluate and, for
every descriptor, the tuple of connected-graph indices whose values it multiplies.

>>> s = independent_set(1, 1, 2)
>>> s.einsums
[['->,s0'], ['i,i->,v0,v0']]
>>> len(linear_ace_set(1, 1, 2))   # s, s^2, |v|^2
3
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from optinv.algebra.candidates import graphs_of_degree
from optinv.algebra.evaluate import exact_value
from optinv.algebra.modular import PRIME, exact_tensors, pivot_columns, random_integer_point
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.linear_count import product_terms
from optinv.algebra.molien import ace_signature
from optinv.algebra.select import select_basis
from optinv.algebra.signature import Signature


@dataclass
class DescriptorSet:
    """An ordered list of invariants, each a product of connected contraction graphs."""

    kind: str  # "linear" or "independent"
    n_rad: int
    l_max: int
    nu_max: int
    signature: Signature
    connected: list[ContractionGraph]
    products: list[tuple[int, ...]]
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.products)

    @property
    def label(self) -> str:
        return f"{self.kind} (n_rad={self.n_rad}, l_max={self.l_max}, nu_max={self.nu_max})"

    @property
    def einsums(self) -> list[list[str]]:
        """Each descriptor as the list of einsum strings of its factors."""
        return [[self.connected[k].einsum for k in prod] for prod in self.products]

    def degrees(self) -> list[int]:
        return [sum(self.connected[k].degree for k in prod) for prod in self.products]

    def count_by_degree(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for d in self.degrees():
            out[d] = out.get(d, 0) + 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "n_rad": self.n_rad,
            "l_max": self.l_max,
            "nu_max": self.nu_max,
            "signature": self.signature.to_dict(),
            "connected": [g.einsum for g in self.connected],
            "products": [list(p) for p in self.products],
            "count_by_degree": {str(k): v for k, v in self.count_by_degree().items()},
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "DescriptorSet":
        sig = Signature.from_dict(data["signature"])
        return cls(
            data["kind"], int(data["n_rad"]), int(data["l_max"]), int(data["nu_max"]), sig,
            [ContractionGraph.from_einsum(e, sig) for e in data["connected"]],
            [tuple(int(k) for k in p) for p in data["products"]],
            dict(data.get("info", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"


def independent_set(n_rad: int, l_max: int, nu_max: int, seed: int = 0) -> DescriptorSet:
    """The functionally independent subset (greedy exact Jacobian rank, stops at the bound)."""
    sig = ace_signature(n_rad, l_max)
    basis = select_basis(sig, nu_max, seed=seed)
    graphs = basis.graphs
    info = {"rank": basis.rank, "bound": basis.bound.bound, "complete": basis.complete}
    return DescriptorSet("independent", n_rad, l_max, nu_max, sig, graphs, [(k,) for k in range(len(graphs))], info)


def linear_ace_set(n_rad: int, l_max: int, nu_max: int, seed: int = 0, extra_points: int = 16) -> DescriptorSet:
    """The full linear ACE basis up to ``nu_max`` as products of connected graphs (exact rank filter).

    Note: this is a small self-contained rank filter; the counting part of the project
    (``optinv.algebra.linear_count`` / Molien series) gives the same counts from characters.
    """
    sig = ace_signature(n_rad, l_max)
    connected: list[ContractionGraph] = []
    for d in range(1, nu_max + 1):
        connected.extend(graphs_of_degree(sig, d))
    degrees = [g.degree for g in connected]
    per_degree = {}
    for nu in range(1, nu_max + 1):
        cands = list(product_terms(degrees, nu))
        cands.sort(key=lambda t: (-len(t), sum(connected[k].cost for k in t), t))
        per_degree[nu] = cands
    n_points = max(len(c) for c in per_degree.values()) + extra_points
    rng = np.random.default_rng([seed, 7919])
    values = np.empty((len(connected), n_points), dtype=np.int64)
    for m in range(n_points):
        tensors = exact_tensors(random_integer_point(sig, rng), sig)
        for k, g in enumerate(connected):
            values[k, m] = exact_value(g, tensors)
    kept: list[tuple[int, ...]] = []
    candidates_per_degree = {}
    for nu, cands in per_degree.items():
        cols = np.empty((n_points, len(cands)), dtype=np.int64)
        for c, prod in enumerate(cands):
            v = np.ones(n_points, dtype=np.int64)
            for k in prod:
                v = v * values[k] % PRIME
            cols[:, c] = v
        piv = pivot_columns(cols)
        if len(piv) >= n_points - 1:
            raise RuntimeError("linear_ace_set: too few random points for the rank test")
        kept.extend(cands[c] for c in piv)
        candidates_per_degree[nu] = len(cands)
    # keep only the connected graphs that some product uses, and renumber
    used = sorted({k for prod in kept for k in prod})
    remap = {k: i for i, k in enumerate(used)}
    products = [tuple(remap[k] for k in prod) for prod in kept]
    info = {"candidates_per_degree": {str(k): v for k, v in candidates_per_degree.items()},
            "rank_test": f"exact mod {PRIME} at {n_points} random integer points"}
    return DescriptorSet("linear", n_rad, l_max, nu_max, sig, [connected[k] for k in used], products, info)


def descriptor_sets(n_rad: int, l_max: int, nu_max: int) -> dict[str, DescriptorSet]:
    """Both sets for one setting: ``{"linear": ..., "independent": ...}``."""
    return {"linear": linear_ace_set(n_rad, l_max, nu_max), "independent": independent_set(n_rad, l_max, nu_max)}


__all__ = ["DescriptorSet", "ace_signature", "independent_set", "linear_ace_set", "descriptor_sets"]


if __name__ == "__main__":  # pragma: no cover - quick look at the counts
    import sys

    args = [int(a) for a in sys.argv[1:4]] or [3, 2, 3]
    for kind, s in descriptor_sets(*args).items():
        print(f"{s.label}: {len(s)} descriptors, {len(s.connected)} connected graphs, by degree {s.count_by_degree()}")
