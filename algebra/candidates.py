"""Lazy enumeration of candidate invariants: connected contraction multigraphs.

Candidates come degree by degree (number of tensor factors), and within a
degree cheapest first (then by canonical key, so the order is deterministic).
Nothing of degree ``n + 1`` is built before every candidate of degree ``n`` has
been consumed, so a search that reaches its bound early never builds the rest.

>>> from optinv.algebra.signature import Signature
>>> [g.einsum for g in candidates(Signature.from_l_max(1), 2)]
['->,s', 'i,i->,v,v']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import PRIME, exact_tensors, exact_value, random_integer_point
from optinv.algebra.graphs import EPS_RANK, ContractionGraph, is_connected
from optinv.algebra.signature import EPSILON, Signature


def _label_multisets(signature: Signature, degree: int, with_eps: bool):
    """Multisets of node labels of a given degree that can close into a connected invariant."""
    specs = signature.tensors
    for combo in itertools.combinations_with_replacement(range(len(specs)), degree):
        ranks = [specs[i].rank for i in combo]
        labels = [specs[i].name for i in combo]
        # Sign under the inversion -I: the product of the tensors' parities.  The
        # Levi-Civita symbol is a constant of the contraction, so it adds no sign.
        parity = int(np.prod([specs[i].parity for i in combo]))
        if with_eps:
            ranks.append(EPS_RANK)
            labels.append(EPSILON)
        n = len(ranks)
        if n == 1:
            if ranks[0] == 0 and (signature.group != "O3" or parity == 1):
                yield labels, ranks
            continue
        if 0 in ranks or sum(ranks) % 2:
            continue
        if max(ranks) > sum(ranks) - max(ranks):
            continue  # a node would need a self-loop
        if signature.group == "O3" and parity != 1:
            continue  # changes sign under reflections: not an O(3) invariant
        yield labels, ranks


def _multigraphs(ranks: list[int], labels: list[str]) -> Iterator[list[list[int]]]:
    """All loop-free multiplicity matrices with the given degrees (labelled, with repeats)."""
    n = len(ranks)
    mult = [[0] * n for _ in range(n)]
    rem = list(ranks)
    eps_nodes = {i for i, lab in enumerate(labels) if lab == EPSILON}

    def fill(i: int):
        if i == n - 1:
            if rem[i] == 0:
                yield mult
            return
        targets = list(range(i + 1, n))
        yield from spread(i, targets, 0, rem[i])

    def spread(i: int, targets: list[int], t: int, left: int):
        if t == len(targets):
            if left == 0:
                saved = rem[i]
                rem[i] = 0
                yield from fill(i + 1)
                rem[i] = saved
            return
        j = targets[t]
        # what later targets can still absorb bounds how little this one may take
        capacity_after = sum(rem[k] for k in targets[t + 1 :])
        cap = min(left, rem[j], 1 if (i in eps_nodes or j in eps_nodes) else left)
        for m in range(max(0, left - capacity_after), cap + 1):
            mult[i][j] = mult[j][i] = m
            rem[j] -= m
            yield from spread(i, targets, t + 1, left - m)
            rem[j] += m
        mult[i][j] = mult[j][i] = 0

    yield from fill(0)


def needs_pseudoscalar_products(signature: Signature) -> bool:
    """Whether products of two pseudoscalars can carry O(3)-invariant information the connected graphs miss.

    By the first fundamental theorem for O(3), every invariant polynomial is a
    linear combination of contractions with delta and at most one epsilon, of
    total parity +1, connected or not.  A disconnected one is a product of
    connected ones; a factor of parity +1 is an invariant itself, so only the
    factors of parity -1 (pseudoscalars) are new, and products of four or more
    are products of pairs.  Pseudoscalars exist under O(3) only with axial
    tensors (polar tensors alone give parity +1 to every eps-free graph, and
    their eps graphs are then polynomials in eps-free ones); under SO(3) every
    pseudoscalar is itself a candidate.
    """
    return signature.group == "O3" and any(t.axial for t in signature.tensors)


@lru_cache(maxsize=64)
def _pseudoscalars(signature: Signature, degree: int) -> tuple[ContractionGraph, ...]:
    """Connected graphs of parity -1 under the signature's O(3): the factors of pseudoscalar products."""
    lifted = Signature(signature.tensors, "SO3", signature.convention, aliases=signature.aliases)
    return tuple(g for g in graphs_of_degree(lifted, degree) if g.parity(signature) == -1)


def _pseudoscalar_products(signature: Signature, degree: int) -> list[ContractionGraph]:
    """Products ``p1 * p2`` of two connected pseudoscalars with ``degree`` factors in all (an O(3) invariant)."""
    out = []
    for d1 in range(1, degree // 2 + 1):
        first, second = _pseudoscalars(signature, d1), _pseudoscalars(signature, degree - d1)
        for i, g1 in enumerate(first):
            for g2 in second[i:] if d1 == degree - d1 else second:
                labels = list(g1.labels) + list(g2.labels)
                n1, n = g1.n_nodes, g1.n_nodes + g2.n_nodes
                mult = [[0] * n for _ in range(n)]
                for a, b, m in g1.edges:
                    mult[a][b] = mult[b][a] = m
                for a, b, m in g2.edges:
                    mult[n1 + a][n1 + b] = mult[n1 + b][n1 + a] = m
                out.append(ContractionGraph.canonical(labels, mult, signature))
    return out


def graphs_of_degree(signature: Signature, degree: int) -> list[ContractionGraph]:
    """Every distinct, not identically zero candidate with ``degree`` tensor factors.

    Connected graphs, plus (see :func:`needs_pseudoscalar_products`) products
    of two pseudoscalars under O(3) with axial tensors.
    """
    found: dict[str, ContractionGraph] = {}
    eps_options = (False, True) if signature.allows_epsilon else (False,)
    for with_eps in eps_options:
        for labels, ranks in _label_multisets(signature, degree, with_eps):
            for mult in _multigraphs(ranks, labels):
                if not is_connected(mult):
                    continue
                g = ContractionGraph.canonical(labels, mult, signature)
                found.setdefault(g.key, g)
    graphs = sorted(found.values(), key=lambda g: (g.cost, g.key))
    if any(g.has_epsilon for g in graphs):
        graphs = _drop_vanishing_and_coinciding(graphs, signature)
    if needs_pseudoscalar_products(signature) and degree >= 2:
        # the factors are distinct nonzero pseudoscalars, so distinct pairs give distinct products
        products = {g.key: g for g in _pseudoscalar_products(signature, degree)}
        graphs = sorted(graphs + list(products.values()), key=lambda g: (g.cost, g.key))
    return graphs


def _drop_vanishing_and_coinciding(graphs: list[ContractionGraph], signature: Signature) -> list[ContractionGraph]:
    """Remove Levi-Civita graphs that vanish identically or equal +-an earlier (cheaper) graph.

    An eps contracted with a symmetric pair is zero, and Schouten-type identities
    of eps make some non-isomorphic graphs the same function.  Both are found by
    exact values at two random integer points (a wrong verdict has probability
    about degree/p).
    """
    points = [exact_tensors(random_integer_point(signature, np.random.default_rng(seed)), signature) for seed in (11, 12)]
    seen: set[tuple[int, ...]] = set()
    kept = []
    for g in graphs:
        if not g.has_epsilon:
            kept.append(g)
            continue
        values = tuple(exact_value(g, t) for t in points)
        if not any(values):
            continue
        negated = tuple((-v) % PRIME for v in values)
        if values in seen or negated in seen:
            continue
        seen.add(values)
        kept.append(g)
    return kept


def candidates(signature: Signature, n_max: int) -> Iterator[ContractionGraph]:
    """Candidate invariants with at most ``n_max`` factors: by degree, cheapest first, lazily."""
    if not isinstance(n_max, int) or isinstance(n_max, bool) or n_max < 1:
        raise OptinvError(f"n_max: expected an integer >= 1, got {n_max!r}")
    for degree in range(1, n_max + 1):
        yield from graphs_of_degree(signature, degree)
