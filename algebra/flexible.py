"""Ranks on strata, and flexible selection: bases that stay complete where molecules live.

Every candidate with at most ``n_max`` factors is evaluated, exactly mod p, at
one random exact point of each stratum (:mod:`optinv.algebra.strata`); its
gradient restricted to the stratum's slice is one row of that stratum's matrix.
The rank of all rows is the *maximum achievable* on the stratum with ``n_max``
factors (every candidate checked, as for generic maximality).

A *flexible* basis reaches that maximum on every stratum at once, the generic
one included.  Each stratum is a linear matroid on the candidates, so this asks
for a smallest common spanning set of several matroids.  The greedy order
of the generic search cannot do this (it keeps what raises the generic rank
and is then stuck on the strata), so the search is:

1. greedy cover: take the candidate that raises the rank on the most strata
   (raising the generic rank counts most), cheapest on ties, until every
   stratum is at its maximum; drop members that became redundant;
2. exhaustive depth-first search (branch and bound) for every size from the
   lower bound ``max_s r_s`` (no set is smaller than its largest rank) up to
   the greedy size, then for the cheapest set of the smallest size;
3. if step 2 spends its node budget, single exchanges (a member for a cheaper
   candidate) while every stratum stays at its maximum.

The report says which guarantee holds: size proven minimal (at the lower bound,
or by exhaustive search) or only best found; cost proven minimal for that size
or only locally minimal.

>>> from optinv.algebra.signature import Signature
>>> b = select_flexible_basis(Signature.from_l_max(2), n_max=4)
>>> len(b), b.complete, all(s.rank == s.max_rank for s in b.strata)
(6, True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import time
from dataclasses import dataclass

import numpy as np

from optinv.algebra.basis import Basis, SelectedInvariant, StratumRank
from optinv.algebra.candidates import candidates
from optinv.algebra.errors import OptinvError
from optinv.algebra.modular import PRIME, eliminate_with, ranks_after, stack_rows
from optinv.algebra.modular import modular_rank
from optinv.algebra.rank import orbit_bound
from optinv.algebra.select import float_rank_of
from optinv.algebra.signature import Signature
from optinv.algebra.strata import StrataRows, Stratum, catalogue

Progress = Callable[[str], None]


# -- the search ----------------------------------------------------------------------------
#
# All strata at once: a stack ``R`` (strata, candidates, K) of every candidate's
# restricted rows reduced against the members chosen so far
# (:func:`optinv.algebra.modular.stack_rows`, :func:`eliminate_with`); a
# candidate raises stratum s exactly when its reduced row there is nonzero.


def _greedy_cover(R0: np.ndarray, weights: np.ndarray, order: list[int], p: int) -> list[int]:
    rank_in_order = {c: k for k, c in enumerate(order)}
    R, chosen = R0, []
    while True:
        gain = weights @ (R != 0).any(axis=2)
        if not gain.any():
            return chosen
        best = max(range(R.shape[1]), key=lambda c: (gain[c], -rank_in_order[c]))
        chosen.append(best)
        R, _ = eliminate_with(R, best, p)


def _reduced_without(R0: np.ndarray, members: list[int], p: int) -> tuple[np.ndarray, np.ndarray]:
    """The stack reduced against ``members``, and their ranks: one elimination pass."""
    R, ranks = R0, np.zeros(R0.shape[0], dtype=np.int64)
    for c in members:
        R, raised = eliminate_with(R, c, p)
        ranks += raised
    return R, ranks


def _drop_redundant(chosen: list[int], R0, targets, costs, p) -> list[int]:
    current = list(chosen)
    for c in sorted(chosen, key=lambda c: -costs[c]):
        trial = [m for m in current if m != c]
        if (_reduced_without(R0, trial, p)[1] == targets).all():
            current = trial
    return current


def _cheapen(chosen: list[int], R0, targets, costs, p) -> list[int]:
    """Single exchanges: a member for a cheaper candidate, while every target holds, until none helps.

    Removing a member lowers each stratum's rank by at most one; a candidate
    can replace it exactly when its rows, reduced against the other members,
    are nonzero on every stratum that lost rank: one elimination pass per
    member tests every candidate at once.
    """
    current = list(chosen)
    improved = True
    while improved:
        improved = False
        for m in sorted(current, key=lambda c: -costs[c]):
            rest = [x for x in current if x != m]
            R, ranks = _reduced_without(R0, rest, p)
            lost = (targets - ranks) > 0
            restores = ((R != 0).any(axis=2) | ~lost[:, None]).all(axis=0)
            options = [c for c in np.flatnonzero(restores) if costs[c] < costs[m] and c not in current]
            if options:
                current = rest + [min(options, key=lambda c: (costs[c], c))]
                improved = True
                break
    return current


class _BudgetSpent(Exception):
    pass


def _exact(R0: np.ndarray, targets: np.ndarray, size: int, order: list[int], costs: list[int], p: int,
           budget: list[int], cost_bound: float) -> list[int] | None:
    """Cheapest set of at most ``size`` candidates reaching every target, costing less than ``cost_bound``.

    Depth-first over candidates in ``order`` (cheapest first), include before
    exclude.  Pruning, each valid for every completion of a partial set:
    a stratum still needing ``n`` rank needs ``n`` more members and ``n``
    remaining candidates that raise it; a member that does not raise stratum
    s uses one of its ``size - target_s`` spare places; a member that raises
    nothing is never needed in a smallest set; the cheapest possible
    completion must beat the best cost so far.  Each node visited spends one
    unit of ``budget[0]``; :class:`_BudgetSpent` is raised when it runs out (a
    node budget, not a clock, so results do not depend on the machine).
    """
    n = len(order)
    ordered_costs = np.array([costs[c] for c in order], dtype=np.int64)
    best: list[list[int] | None] = [None]
    bound = [cost_bound]

    def dfs(pos: int, R: np.ndarray, chosen: list[int], ranks: np.ndarray, spare: np.ndarray, cost: int):
        budget[0] -= 1
        if budget[0] < 0:
            raise _BudgetSpent
        need = targets - ranks
        if not need.any():
            if cost < bound[0]:
                best[0], bound[0] = list(chosen), cost
            return
        slots = size - len(chosen)
        most = int(need.max())
        if most > slots or pos == n:
            return
        if cost + ordered_costs[pos : pos + most].sum() >= bound[0]:
            return
        rest = np.array(order[pos:])
        raises = (R[:, rest, :] != 0).any(axis=2)
        if (raises.sum(axis=1) < need).any():
            return
        c = order[pos]
        if raises[:, 0].any():
            new_spare = spare - ~raises[:, 0]
            if (new_spare >= 0).all():
                R_in, raised = eliminate_with(R, c, p)
                dfs(pos + 1, R_in, chosen + [c], ranks + raised, new_spare, cost + costs[c])
        dfs(pos + 1, R, chosen, ranks, spare, cost)

    dfs(0, R0, [], np.zeros_like(targets), size - targets, 0)
    return best[0]


@dataclass(frozen=True)
class FlexibleSearch:
    """What the flexible search found, and what it proved about size and cost."""

    members: tuple[int, ...]
    lower_bound: int  # the largest maximum rank over the strata
    size_proven: bool  # no smaller set reaches every maximum
    cost_proven: bool  # no set of this size that does is cheaper
    nodes: int  # search nodes visited
    seconds: float
    exchanged: bool = True  # single cheaper exchanges were made when the budget ran out

    def describe(self) -> str:
        size = len(self.members)
        if self.size_proven and size == self.lower_bound:
            how = f"{size} invariants, the lower bound (the largest maximum rank over the strata)"
        elif self.size_proven:
            how = f"{size} invariants, proven the fewest by exhaustive search (lower bound {self.lower_bound})"
        else:
            how = (f"{size} invariants, best found (lower bound {self.lower_bound}); the exhaustive search "
                   f"spent its budget of {self.nodes} nodes, so a smaller set is not ruled out")
        cost = ("lowest total cost for that size, proven by exhaustive search" if self.cost_proven
                else "cost locally minimal under single exchanges" if self.exchanged
                else "cost not optimised (greedy cover only)")
        return f"flexible: {how}; {cost}"


DEFAULT_NODES = 50_000


def search_flexible(matrices: list[np.ndarray], targets: list[int], costs: list[int], degrees: list[int],
                    generic_index: int = 0, p: int = PRIME, max_nodes: int = DEFAULT_NODES,
                    exchanges: bool = True) -> FlexibleSearch:
    """Smallest, then cheapest, set of candidates (rows) reaching ``targets`` (ranks) on every matrix.

    A greedy cover gives an upper bound; exhaustive depth-first search then
    tries every smaller size from the lower bound up, and finally the cheapest
    set of the size found, visiting at most ``max_nodes`` search nodes; if
    the budget runs out, single cheaper exchanges follow unless ``exchanges``
    is False (they cost ``O(size x candidates)`` rank updates: slow for
    hundreds of candidates and strata).
    """
    start = time.perf_counter()
    budget = [int(max_nodes)]
    n = matrices[0].shape[0]
    R0 = stack_rows(matrices) % p
    goal = np.array(targets, dtype=np.int64)
    order = sorted(range(n), key=lambda c: (costs[c], degrees[c], c))
    weights = np.ones(len(matrices), dtype=np.int64)
    weights[generic_index] = len(matrices) + 1  # the generic rank needs one member per unit: take those first
    chosen = _drop_redundant(_greedy_cover(R0, weights, order, p), R0, goal, costs, p)
    lower = int(goal.max())
    size_proven = len(chosen) == lower
    cost_proven = False
    try:
        for size in range(lower, len(chosen)):
            found = _exact(R0, goal, size, order, costs, p, budget, float("inf"))
            if found is not None:
                chosen, size_proven, cost_proven = found, True, True
                break
        else:
            size_proven = True
            cheaper = _exact(R0, goal, len(chosen), order, costs, p, budget, sum(costs[c] for c in chosen))
            chosen = cheaper if cheaper is not None else chosen
            cost_proven = True
    except _BudgetSpent:
        if exchanges:
            chosen = _cheapen(chosen, R0, goal, costs, p)
    if not (ranks_after(R0, chosen, p) == goal).all():
        raise AssertionError("flexible search lost a stratum's rank")  # every path checks the targets
    rank_in_order = {c: k for k, c in enumerate(sorted(range(n), key=lambda c: (degrees[c], costs[c], c)))}
    members = tuple(sorted(chosen, key=lambda c: rank_in_order[c]))
    return FlexibleSearch(members, lower, size_proven, cost_proven, int(max_nodes) - max(budget[0], 0),
                          time.perf_counter() - start, exchanges)


def select_flexible_basis(signature: Signature, n_max: int, strata: Sequence[Stratum] | None = None, seed: int = 0,
                          progress: Progress | None = None, request: dict | None = None,
                          max_nodes: int = DEFAULT_NODES, exchanges: bool = True) -> Basis:
    """A set complete at generic points that also reaches the maximum achievable rank on every stratum.

    Parameters
    ----------
    signature : Signature
    n_max : int
        At most this many tensor factors per invariant.
    strata : list of Stratum, optional
        Generic first (default: :func:`optinv.algebra.strata.catalogue`, or
        :func:`optinv.algebra.strata.parse_strata_spec` for a spec or a file).
    seed : int
        Seed of the random exact points behind the certificates.
    progress : callable, optional
        Called with lines of text as the search goes.
    request : dict, optional
        Recorded in the basis.
    max_nodes : int
        Budget of the exhaustive search, in nodes (deterministic, unlike a clock).
    exchanges : bool
        Whether single cheaper exchanges follow when the budget runs out.

    Returns
    -------
    Basis
        With ``strata`` (rank and maximum on each) and ``selection`` saying
        which guarantees hold (size proven minimal or best found; cost proven
        or locally minimal).

    Examples
    --------
    >>> from optinv.algebra.signature import Signature
    >>> b = select_flexible_basis(Signature.from_l_max(3), n_max=4)
    >>> len(b), b.rank, b.flexible, "proven the fewest" in b.selection
    (14, 13, True, True)
    """
    if not isinstance(n_max, int) or isinstance(n_max, bool) or n_max < 1:
        raise OptinvError(f"n_max: expected an integer >= 1, got {n_max!r}")
    strata = catalogue(signature) if strata is None else list(strata)
    if not strata or strata[0].kind != "generic":
        raise OptinvError("strata: the first stratum must be the generic one (use strata.catalogue or parse_strata_spec)")
    pool = list(candidates(signature, n_max))
    if progress:
        progress(f"{len(pool)} candidates with at most {n_max} factors, {len(strata)} strata")
    sr = StrataRows(signature, strata, seed)
    matrices = sr.rows(pool)
    targets = [modular_rank(M, sr.p) for M in matrices]
    if progress:
        progress("maximum achievable rank per stratum: " + ", ".join(f"{s.name} {t}" for s, t in zip(strata, targets)))
    found = search_flexible(matrices, targets, [g.cost for g in pool], [g.degree for g in pool], 0, sr.p,
                            max_nodes, exchanges)
    graphs = [pool[c] for c in found.members]
    # certificates: the generic rank reached after each member, in the final order
    generic = matrices[0]
    kept = []
    for k, c in enumerate(found.members):
        kept.append(SelectedInvariant(pool[c], modular_rank(generic[list(found.members[: k + 1])], sr.p),
                                      f"exact mod {sr.p}"))
    bound = orbit_bound(signature, seed)
    strata_ranks = []
    for s, geo, M, t in zip(sr.strata, sr.geometries, matrices, targets):
        strata_ranks.append(StratumRank(s.name, s.kind, s.description, geo.dim, geo.orbit_dim,
                                        modular_rank(M[list(found.members)], sr.p), t))
    if progress:
        progress(f"{found.describe()} ({found.nodes} nodes, {found.seconds:.1f} s)")
    return Basis(
        signature=signature,
        n_max=n_max,
        invariants=tuple(kept),
        bound=bound,
        rank=modular_rank(generic[list(found.members)], sr.p),
        examined=len(pool),
        rejected=tuple(g.einsum for k, g in enumerate(pool) if k not in found.members),
        exhausted=True,
        float_rank=float_rank_of(graphs, signature, seed),
        prime=sr.p,
        seed=seed,
        request=dict(request or {}),
        strata=tuple(strata_ranks),
        selection=found.describe(),
    )
