"""Greedy selection of a minimal complete basis, and checking a user's own list.

Walk the candidates (by degree, cheapest first); keep one only if it raises the
exact modular rank of the Jacobian at a random integer point; stop at the bound
or when the candidates run out.

>>> from optinv.algebra.signature import Signature
>>> b = select_basis(Signature.from_l_max(2), n_max=4)
>>> b.rank, b.bound.bound, b.complete
(6, 6, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optinv.algebra.basis import Basis, SelectedInvariant, StratumRank, strata_table
from optinv.algebra.candidates import graphs_of_degree
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import PRIME, exact_tensors, exact_value_and_gradient, gradient
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.rank import ModularEchelon, float_rank, orbit_bound, random_point
from optinv.algebra.signature import Signature
from optinv.algebra.strata import Stratum, stratum_report

Progress = Callable[[str], None]


def float_rank_of(graphs, signature: Signature, seed: int) -> int:
    """Float64 SVD rank of the graphs' row-normalised Jacobian at a random point: the cross-check."""
    if not graphs:
        return 0
    x = np.random.default_rng(seed + 7).normal(size=(1, signature.dim))
    jac = gradient(graphs, x, signature)[0]
    # normalise rows: invariants of high degree have large gradients
    norms = np.linalg.norm(jac, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return float_rank(jac / norms)[0]


def select_basis(
    signature: Signature,
    n_max: int,
    seed: int = 0,
    progress: Progress | None = None,
    request: dict | None = None,
    strata: list[Stratum] | None = None,
) -> Basis:
    """Select a minimal functionally independent set, reaching the bound if ``n_max`` allows.

    Candidates come by degree, cheapest first; one is kept when it raises the
    exact (mod p) rank of the Jacobian at a random integer point; the search
    stops at the bound ``D - d_orbit`` or when every candidate was checked.

    Parameters
    ----------
    signature : Signature
        The input tensors and the group.
    n_max : int
        At most this many tensor factors per invariant (``n_max + 1``-body patterns).
    seed : int
        Seed of the random points behind the certificates.
    progress : callable, optional
        Called with one line of text per degree.
    request : dict, optional
        Recorded in the basis as how it was asked for.
    strata : list of Stratum, optional
        For example :func:`optinv.algebra.strata.catalogue`: the basis then
        reports its rank on each stratum beside the maximum that any candidate
        set with ``n_max`` factors reaches there.  The selection itself is the
        generic one; :func:`optinv.algebra.flexible.select_flexible_basis`
        reaches every stratum's maximum.

    Returns
    -------
    Basis
        The invariants, each with the rank it raised the set to, and the proof.

    Examples
    --------
    >>> from optinv.algebra.signature import Signature
    >>> b = select_basis(Signature.from_l_max(3), n_max=4)
    >>> len(b), b.rank, b.bound.bound, b.complete
    (13, 13, 13, True)
    """
    if not isinstance(n_max, int) or isinstance(n_max, bool) or n_max < 1:
        raise OptinvError(f"n_max: expected an integer >= 1, got {n_max!r}")
    bound = orbit_bound(signature, seed)
    tensors = exact_tensors(random_point(signature, seed + 1), signature)
    echelon = ModularEchelon(signature.dim)
    kept: list[SelectedInvariant] = []
    rejected: list[str] = []
    examined = 0
    exhausted = True
    for degree in range(1, n_max + 1):
        if echelon.rank >= bound.bound:
            exhausted = False
            break
        graphs = graphs_of_degree(signature, degree)
        for g in graphs:
            if echelon.rank >= bound.bound:
                exhausted = False
                break
            examined += 1
            _, grad = exact_value_and_gradient(g, tensors, signature)
            if echelon.add(grad):
                kept.append(SelectedInvariant(g, echelon.rank, f"exact mod {PRIME}"))
            else:
                rejected.append(g.einsum)
        if progress:
            progress(f"degree {degree}: {len(graphs)} candidates, rank {echelon.rank} / bound {bound.bound}")
    graphs = [inv.graph for inv in kept]
    ranks_on_strata = stratum_report(graphs, signature, n_max, strata, seed) if strata else ()
    return Basis(
        signature=signature,
        n_max=n_max,
        invariants=tuple(kept),
        bound=bound,
        rank=echelon.rank,
        examined=examined,
        rejected=tuple(rejected),
        exhausted=exhausted,
        float_rank=float_rank_of(graphs, signature, seed),
        prime=PRIME,
        seed=seed,
        request=dict(request or {}),
        strata=ranks_on_strata,
    )


@dataclass(frozen=True)
class CheckEntry:
    einsum: str  # as given
    graph: ContractionGraph
    independent: bool
    rank_after: int
    duplicate_of: int | None  # index of an earlier isomorphic entry
    vanishes: bool = False  # zero, with zero gradient, at the random point: identically zero


@dataclass(frozen=True)
class CheckReport:
    """Result of checking a given list of invariants against a signature."""

    signature: Signature
    entries: tuple[CheckEntry, ...]
    rank: int
    bound: int
    float_rank: int
    strata: tuple[StratumRank, ...] = ()
    n_max: int | None = None  # what the strata's maximum achievable ranks were taken over

    @property
    def complete(self) -> bool:
        return self.rank == self.bound

    @property
    def flexible(self) -> bool:
        return bool(self.strata) and all(s.rank == s.max_rank for s in self.strata)

    @property
    def all_independent(self) -> bool:
        return all(e.independent for e in self.entries)

    def report(self) -> str:
        lines = []
        for k, e in enumerate(self.entries):
            if e.vanishes:
                verdict = "vanishes identically (zero at a random point mod p, with zero gradient)"
            elif e.duplicate_of is not None:
                verdict = f"dependent: same invariant as #{e.duplicate_of}"
            elif e.independent:
                verdict = f"independent (rank {e.rank_after}, exact mod {PRIME})"
            else:
                verdict = "dependent: a function of earlier entries"
            lines.append(f"{k:3d}  {e.einsum:<40s} degree {e.graph.degree}  {verdict}")
        n_ind = sum(e.independent for e in self.entries)
        status = "complete" if self.complete else "incomplete"
        lines.append(
            f"\n{len(self.entries)} given, {n_ind} independent; rank {self.rank} / bound {self.bound} ({status}); "
            f"float rank {self.float_rank}"
        )
        if self.strata:
            lines.append(f"\nranks on strata (exact mod {PRIME}; max = every candidate with at most "
                         f"{self.n_max} factors):")
            lines.append(strata_table(self.strata, self.n_max))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "signature": self.signature.to_dict(),
            "entries": [
                {"einsum": e.einsum, "canonical": e.graph.einsum, "degree": e.graph.degree,
                 "independent": e.independent, "rank_after": e.rank_after, "duplicate_of": e.duplicate_of,
                 "vanishes": e.vanishes}
                for e in self.entries
            ],
            "rank": self.rank,
            "bound": self.bound,
            "complete": self.complete,
            "float_rank": self.float_rank,
            "n_max": self.n_max,
            "strata": [st.to_dict() for st in self.strata],
        }


def parse_einsum_list(lines, signature: Signature) -> list[tuple[str, ContractionGraph]]:
    """Parse einsum strings (blank lines and ``#`` comments skipped); errors name the line."""
    out = []
    for lineno, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append((text, ContractionGraph.from_einsum(text, signature)))
        except OptinvError as exc:
            raise OptinvError(f"line {lineno}: {exc}") from None
    if not out:
        raise OptinvError("invariant list: no einsum strings found")
    return out


def check_invariants(einsums, signature: Signature, seed: int = 0, strata: list[Stratum] | None = None,
                     n_max: int | None = None) -> CheckReport:
    """Report which of the given invariants are independent, in order, and their rank against the bound.

    Parameters
    ----------
    einsums : iterable of str
        Einsum strings such as ``"ij,ik,jk->,q,q,q"`` (blank lines and ``#``
        comments are skipped; hippynn's names ``zero``, ``one``, ... work with
        the ``l_max`` shorthand).
    signature : Signature
    seed : int
        Seed of the random points behind the certificates.
    strata : list of Stratum, optional
        Also report the list's rank on each stratum beside the maximum reached
        by every candidate with at most ``n_max`` factors, so a user sees what
        the list misses.
    n_max : int, optional
        Factors allowed for that maximum (default: the largest degree in the list).

    Returns
    -------
    CheckReport

    Examples
    --------
    >>> from optinv.algebra.signature import Signature
    >>> r = check_invariants(["i,i->,v,v", "ij,ij->,q,q", "i,ij,j->,v,q,v"], Signature.from_l_max(2))
    >>> [e.independent for e in r.entries], r.rank, r.bound
    ([True, True, True], 3, 6)
    """
    parsed = parse_einsum_list(einsums, signature)
    bound = orbit_bound(signature, seed)
    tensors = exact_tensors(random_point(signature, seed + 1), signature)
    echelon = ModularEchelon(signature.dim)
    entries = []
    seen: dict[str, int] = {}
    for k, (text, g) in enumerate(parsed):
        value, grad = exact_value_and_gradient(g, tensors, signature)
        independent = echelon.add(grad)
        vanishes = value == 0 and not grad.any()
        entries.append(CheckEntry(text, g, independent, echelon.rank, seen.get(g.key), vanishes))
        seen.setdefault(g.key, k)
    graphs = [g for _, g in parsed]
    ranks_on_strata: tuple = ()
    if strata:
        n_max = max(g.degree for g in graphs) if n_max is None else n_max
        ranks_on_strata = stratum_report(graphs, signature, n_max, strata, seed)
    return CheckReport(signature, tuple(entries), echelon.rank, bound.bound, float_rank_of(graphs, signature, seed),
                       ranks_on_strata, n_max)
