"""Contraction multigraphs: the candidate invariants.

A node is one tensor factor (labelled by the tensor's name, or ``eps`` for the
Levi-Civita symbol); an edge is one contracted index pair.  Tensors are
symmetric, so only the multigraph matters; they are traceless, so there are no
self-loops.  A graph has a canonical key (equal keys <=> isomorphic graphs
respecting labels), an einsum string that round-trips, a degree (number of input
tensor factors) and a cost (multiply-adds of its best pairwise contraction order).

>>> from optinv.algebra.signature import Signature
>>> sig = Signature.from_l_max(2)
>>> g = ContractionGraph.from_einsum("ij,ik,jk->,q,q,q", sig)
>>> g.einsum, g.degree, g.cost
('ij,ik,jk->,q,q,q', 3, 36)
"""

from __future__ import annotations

import dataclasses
import itertools
import string
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from optinv.algebra.cartesian import LEVI_CIVITA
from optinv.algebra.contraction_order import cheapest_merges
from optinv.algebra.errors import OptinvError
from optinv.algebra.modular import PRIME, contract_mod, exact_tensors, random_integer_point
from optinv.algebra.signature import EPSILON, Signature

# Index letters for edges: i, j, k, ... first, as in the usual notation.
INDEX_LETTERS = "ijklmnopqrstuvwxyzabcdefgh" + string.ascii_uppercase
EPS_RANK = 3
# Two Levi-Civita symbols: (a x w).(b x w) and products of two eps pseudoscalars are O(3) invariants.
MAX_EPSILONS = 2


def _label_order(signature: Signature) -> dict[str, int]:
    order = {name: i for i, name in enumerate(signature.names)}
    order[EPSILON] = len(order)
    return order


@dataclass(frozen=True)
class ContractionGraph:
    """A contraction multigraph in canonical form: connected, or a product of pseudoscalars (O(3), axial).

    ``labels`` are the node labels (tensor names or ``eps``), sorted by signature
    order; ``edges`` the sorted tuple of ``(i, j, multiplicity)`` with ``i < j``.
    Build one with :meth:`canonical` or :meth:`from_einsum`, which put it in
    canonical form; two graphs are isomorphic exactly when they compare equal.
    """

    labels: tuple[str, ...]
    edges: tuple[tuple[int, int, int], ...]
    ranks: tuple[int, ...]
    # A graph with a Levi-Civita symbol fixes its invariant only up to sign (which
    # eps slot an edge takes matters).  ``sign`` keeps the orientation a user wrote;
    # it is not part of the graph's identity (key, equality, hashing).
    sign: int = field(default=1, compare=False)

    # -- construction ---------------------------------------------------------
    @classmethod
    def canonical(cls, labels, mult, signature: Signature) -> "ContractionGraph":
        """Canonical form of the graph with node ``labels`` and multiplicity matrix ``mult``."""
        order = _label_order(signature)
        ranks = [EPS_RANK if lab == EPSILON else signature.tensor(lab).rank for lab in labels]
        perm = canonical_order(labels, mult, order)
        lab = tuple(labels[p] for p in perm)
        n = len(perm)
        edges = tuple(
            (a, b, mult[perm[a]][perm[b]]) for a in range(n) for b in range(a + 1, n) if mult[perm[a]][perm[b]]
        )
        return cls(lab, edges, tuple(ranks[p] for p in perm))

    @classmethod
    def from_einsum(cls, text: str, signature: Signature) -> "ContractionGraph":
        """Parse ``"ij,ik,jk->,q,q,q"`` (subscripts, ``->``, then one tensor name per factor)."""
        if not isinstance(text, str) or "->" not in text:
            raise OptinvError(f"einsum string {text!r}: expected 'subscripts->,name,name,...'")
        lhs, rhs = text.strip().split("->", 1)
        rhs_parts = [p.strip() for p in rhs.split(",")]
        if rhs_parts[0] != "":
            raise OptinvError(
                f"einsum string {text!r}: not a full contraction (output indices {rhs_parts[0]!r} must be empty)"
            )
        names = rhs_parts[1:]
        subs = [s.strip() for s in lhs.split(",")]
        if len(subs) != len(names):
            raise OptinvError(
                f"einsum string {text!r}: {len(subs)} subscript groups but {len(names)} tensor names"
            )
        labels = []
        for name, sub in zip(names, subs):
            if name == EPSILON:
                rank, label = EPS_RANK, EPSILON
            else:
                spec = signature.tensor(name)  # raises on unknown names
                rank, label = spec.rank, spec.name
            if len(sub) != rank:
                raise OptinvError(
                    f"einsum string {text!r}: tensor {name!r} has rank {rank} but subscripts {sub!r} have {len(sub)} indices"
                )
            if not all(ch in string.ascii_letters for ch in sub):
                raise OptinvError(f"einsum string {text!r}: subscripts must be ASCII letters, got {sub!r}")
            labels.append(label)
        where: dict[str, list[int]] = {}
        for node, sub in enumerate(subs):
            for ch in sub:
                where.setdefault(ch, []).append(node)
        n = len(labels)
        mult = [[0] * n for _ in range(n)]
        for ch, nodes in where.items():
            if len(nodes) != 2:
                raise OptinvError(
                    f"einsum string {text!r}: not a full contraction (index {ch!r} appears {len(nodes)} times, expected 2)"
                )
            a, b = nodes
            if a == b:
                raise OptinvError(
                    f"einsum string {text!r}: index {ch!r} is a trace of one factor, which vanishes for traceless tensors"
                )
            mult[a][b] += 1
            mult[b][a] += 1
        if n == 0:
            raise OptinvError(f"einsum string {text!r}: no factors")
        if not signature.group.keeps(_parity(labels, signature)):
            raise OptinvError(
                f"einsum string {text!r}: a pseudoscalar (changes sign under reflections), which is not invariant"
                " under O(3); use group SO3"
            )
        if sum(1 for lab in labels if lab == EPSILON) > MAX_EPSILONS:
            raise OptinvError(f"einsum string {text!r}: at most {MAX_EPSILONS} {EPSILON!r} factors are supported")
        parts = components(mult)
        if len(parts) > 1 and all(signature.group.keeps(_parity([labels[i] for i in part], signature))
                                  for part in parts):
            raise OptinvError(f"einsum string {text!r}: disconnected (a product of smaller invariants)")
        graph = cls.canonical(labels, mult, signature)
        if graph.has_epsilon and _orientation(subs, labels, graph, signature) == -1:
            graph = dataclasses.replace(graph, sign=-1)
        return graph

    # -- properties -----------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.labels)

    @property
    def degree(self) -> int:
        """Number of input tensor factors (the Levi-Civita symbol does not count)."""
        return sum(1 for lab in self.labels if lab != EPSILON)

    @property
    def has_epsilon(self) -> bool:
        return EPSILON in self.labels

    def parity(self, signature: Signature) -> int:
        """Sign of the invariant under reflections: -1 for a pseudoscalar, +1 for an O(3) invariant."""
        return _parity(self.labels, signature)

    @cached_property
    def key(self) -> str:
        """Canonical key: equal for isomorphic graphs (labels respected)."""
        edges = ";".join(f"{a}-{b}x{m}" for a, b, m in self.edges)
        return f"{'.'.join(self.labels)}|{edges}"

    @cached_property
    def subscripts(self) -> tuple[str, ...]:
        """Index letters of each node, one letter per edge, edges in canonical order."""
        subs = [[] for _ in self.labels]
        letters = iter(INDEX_LETTERS)
        for a, b, m in self.edges:
            for _ in range(m):
                ch = next(letters)
                subs[a].append(ch)
                subs[b].append(ch)
        if self.sign == -1:  # an odd permutation of the eps slots negates the invariant
            e = self.labels.index(EPSILON)
            subs[e][0], subs[e][1] = subs[e][1], subs[e][0]
        return tuple("".join(s) for s in subs)

    @cached_property
    def einsum(self) -> str:
        return ",".join(self.subscripts) + "->," + ",".join(self.labels)

    def multiplicity_matrix(self) -> list[list[int]]:
        n = self.n_nodes
        mult = [[0] * n for _ in range(n)]
        for a, b, m in self.edges:
            mult[a][b] = mult[b][a] = m
        return mult

    @cached_property
    def cost(self) -> int:
        """Multiply-adds of the cheapest pairwise contraction order of the Cartesian tensors."""
        return best_contraction_cost(self.multiplicity_matrix())

    def __str__(self) -> str:
        return self.einsum


def _parity(labels, signature: Signature) -> int:
    # The Levi-Civita symbol is a constant of the contraction: only the tensors' parities count.
    sign = 1
    for lab in labels:
        if lab != EPSILON:
            sign *= signature.tensor(lab).parity
    return sign


def _orientation(subs, labels, graph: "ContractionGraph", signature: Signature) -> int:
    """+1 if the einsum as written equals the canonical graph's invariant, -1 if its negative.

    Decided exactly: both are evaluated modulo a prime at two random integer points.
    """
    for seed in (21, 22):
        tensors = exact_tensors(random_integer_point(signature, np.random.default_rng(seed)), signature)

        def value(subscripts, node_labels) -> int:
            ops = [LEVI_CIVITA % PRIME if lab == EPSILON else tensors[lab] for lab in node_labels]
            return int(ops[0]) % PRIME if len(ops) == 1 else int(contract_mod(list(subscripts), "", ops))

        written = value(subs, labels)
        canonical = value(graph.subscripts, graph.labels)
        if canonical:
            return 1 if written == canonical else -1
    return 1  # identically zero: the orientation does not matter


def components(mult) -> list[list[int]]:
    """Connected components of a multigraph (node lists, in order of their first node)."""
    n = len(mult)
    seen: set[int] = set()
    parts = []
    for start in range(n):
        if start in seen:
            continue
        part, stack = [], [start]
        seen.add(start)
        while stack:
            a = stack.pop()
            part.append(a)
            for b in range(n):
                if mult[a][b] and b not in seen:
                    seen.add(b)
                    stack.append(b)
        parts.append(sorted(part))
    return parts


def is_connected(mult) -> bool:
    return len(mult) > 0 and len(components(mult)) == 1


def _refine_colours(labels, mult, order) -> list[int]:
    """Colour refinement (1-dim Weisfeiler-Lehman) with canonically numbered colours."""
    n = len(labels)
    colours = [order[lab] for lab in labels]
    while True:
        sig = [
            (colours[a], tuple(sorted((colours[b], mult[a][b]) for b in range(n) if mult[a][b])))
            for a in range(n)
        ]
        ranking = {s: i for i, s in enumerate(sorted(set(sig)))}
        new = [ranking[s] for s in sig]
        if len(set(new)) == len(set(colours)):
            return new
        colours = new


def canonical_order(labels, mult, order) -> tuple[int, ...]:
    """Node permutation giving the canonical form.

    Nodes are sorted by refined colour; within colour classes every permutation
    is tried and the lexicographically smallest adjacency wins.  Classes stay
    small for the graphs of interest (at most a handful of nodes).
    """
    n = len(labels)
    colours = _refine_colours(labels, mult, order)
    classes: dict[int, list[int]] = {}
    for node in range(n):
        classes.setdefault(colours[node], []).append(node)
    groups = [classes[c] for c in sorted(classes)]
    best, best_perm = None, None
    for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
        perm = tuple(itertools.chain.from_iterable(choice))
        adj = tuple(mult[perm[a]][perm[b]] for a in range(n) for b in range(a + 1, n))
        if best is None or adj > best:  # larger first: heavy edges between early nodes
            best, best_perm = adj, perm
    return best_perm


def best_contraction_cost(mult) -> int:
    """Multiply-adds of the cheapest pairwise contraction order (see :mod:`optinv.algebra.contraction_order`)."""
    return cheapest_merges(mult)[0]
