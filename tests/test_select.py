"""Rank, bound and selection: exact vs float, bound never exceeded, known counts, maximality, JSON.

Independent references used here: a modular rank by plain Python-integer
elimination, float Jacobian ranks from ``evaluate.gradient`` + NumPy SVD, the
orbit dimension from finite rotations (not the engine's generators), and finite
differences of ``evaluate.evaluate``.
"""

import itertools
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optinv.testing as ot
from optinv.algebra.basis import Basis
from optinv.algebra.cartesian import GENERATORS, transform_rows
from optinv.algebra.candidates import candidates
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import (
    PRIME,
    evaluate,
    exact_tensors,
    exact_value,
    exact_value_and_gradient,
    gradient,
)
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.rank import orbit_bound
from optinv.algebra.select import check_invariants, select_basis
from optinv.algebra.signature import Signature
from budget import scaled


# -- independent references ------------------------------------------------------------------


def modular_rank_ref(rows, p=PRIME) -> int:
    """Rank over GF(p) by Gaussian elimination on Python integers."""
    m = [[int(v) % p for v in row] for row in rows]
    rank, cols = 0, len(m[0]) if m else 0
    for c in range(cols):
        piv = next((r for r in range(rank, len(m)) if m[r][c]), None)
        if piv is None:
            continue
        m[rank], m[piv] = m[piv], m[rank]
        inv = pow(m[rank][c], p - 2, p)
        m[rank] = [v * inv % p for v in m[rank]]
        for r in range(len(m)):
            if r != rank and m[r][c]:
                f = m[r][c]
                m[r] = [(a - f * b) % p for a, b in zip(m[r], m[rank])]
        rank += 1
    return rank


def float_rank_ref(jac: np.ndarray, rtol: float = 1e-9) -> int:
    """Numerical rank of a Jacobian with rows scaled to unit norm (invariants of high degree are large)."""
    norms = np.linalg.norm(jac, axis=1, keepdims=True)
    jac = jac[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
    if jac.size == 0:
        return 0
    sv = np.linalg.svd(jac, compute_uv=False)
    return int(np.sum(sv > rtol * sv[0]))


def float_jacobian_rank(graphs, sig: Signature, seed: int = 1) -> int:
    if not graphs:
        return 0
    x = np.random.default_rng(seed).normal(size=(1, sig.dim))
    return float_rank_ref(gradient(graphs, x, sig)[0])


def exact_jacobian_rank(graphs, sig: Signature, seed: int = 2) -> int:
    if not graphs:
        return 0
    x = np.random.default_rng(seed).integers(0, PRIME, size=sig.dim)
    tensors = exact_tensors(x, sig)
    return modular_rank_ref([exact_value_and_gradient(g, tensors, sig)[1] for g in graphs])


def _axis_rotation(a: int, t: float) -> np.ndarray:
    L = GENERATORS[a].astype(float)
    return np.eye(3) + np.sin(t) * L + (1 - np.cos(t)) * (L @ L)


def float_bound(sig: Signature, seed: int = 3) -> int:
    """D minus the rank of the orbit tangents, from finite rotations at a random float point."""
    x = np.random.default_rng(seed).normal(size=(1, sig.dim))
    h = 1e-5
    tangents = np.array([
        (transform_rows(x, sig, _axis_rotation(a, h)) - transform_rows(x, sig, _axis_rotation(a, -h)))[0] / (2 * h)
        for a in range(3)
    ])
    sv = np.linalg.svd(tangents, compute_uv=False)
    return sig.dim - int(np.sum(sv > 1e-6 * max(sv[0], 1e-300)))


# -- bound -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, bound",
    [("s:0", 1), ("a:0,b:0", 2), ("v:1", 1), ("s:0,v:1", 2), ("a:1,b:1", 3), ("q:2", 2), ("t:3", 4),
     ("s:0,v:1,q:2,t:3", 13), ("w:1:axial", 1)],
)
def test_orbit_bound_known_values(spec, bound):
    sig = Signature.parse(spec)
    assert orbit_bound(sig).bound == bound == float_bound(sig)


@settings(max_examples=scaled(30))
@given(sig=ot.signatures(max_tensors=5, max_rank=6, axial=True), seed=st.integers(0, 1000))
def test_orbit_bound_matches_finite_rotations(sig, seed):
    b = orbit_bound(sig, seed=seed)
    assert b.bound == float_bound(sig) and b.dim == sig.dim and 0 <= b.orbit_dim <= 3


# -- exact vs float ----------------------------------------------------------------------------


@settings(max_examples=scaled(25))
@given(sig=ot.signatures(max_tensors=3, max_rank=3), n_max=st.integers(1, 3))
def test_exact_and_float_ranks_agree_and_never_exceed_the_bound(sig, n_max):
    graphs = list(itertools.islice(candidates(sig, n_max), 80))
    exact = exact_jacobian_rank(graphs, sig)
    assert exact == float_jacobian_rank(graphs, sig)
    bound = orbit_bound(sig).bound
    assert exact <= bound == float_bound(sig)
    basis = select_basis(sig, n_max)
    assert basis.rank <= basis.bound.bound == bound
    assert basis.float_rank == basis.rank == float_jacobian_rank(basis.graphs, sig) == exact_jacobian_rank(basis.graphs, sig)
    if len(graphs) < 80:
        assert basis.rank == exact  # greedy reaches the rank of all candidates


@settings(max_examples=scaled(20))
@given(sig=ot.signatures(max_tensors=4, max_rank=3, groups=["SO3"], axial=True), n_max=st.integers(1, 4),
       seed=st.integers(0, 100))
def test_selection_bookkeeping(sig, n_max, seed):
    basis = select_basis(sig, n_max, seed=seed)
    assert [inv.rank_after for inv in basis.invariants] == list(range(1, basis.rank + 1))
    assert len(basis) == basis.rank <= basis.bound.bound
    assert basis.examined == len(basis) + len(basis.rejected)
    assert all(inv.degree <= n_max for inv in basis.invariants)
    everything = list(candidates(sig, n_max))
    # the examined candidates are a prefix of the candidate order, each kept or rejected
    assert {g.einsum for g in everything[: basis.examined]} == set(basis.einsums) | set(basis.rejected)
    if not basis.complete:
        assert basis.exhausted and basis.examined == len(everything)
        assert "maximal for n_max" in basis.proof()
    else:
        assert "complete" in basis.proof()


# -- exact values and gradients vs float; gradients vs finite differences -------------------------------

EXACT_CASES = [Signature.from_l_max(3, "SO3"), Signature.parse("a:1,b:1,q:2,w:1:axial", "SO3"), Signature.parse("q:2,l5:5")]


@lru_cache(maxsize=None)
def exact_case_graphs(k: int):
    return list(candidates(EXACT_CASES[k], 4 if k < 2 else 3))


@pytest.mark.parametrize("k", range(len(EXACT_CASES)), ids=[s.describe() for s in EXACT_CASES])
@settings(max_examples=scaled(10))
@given(data=st.data())
def test_exact_values_and_gradients_match_float_at_small_integer_points(k, data):
    sig, graphs = EXACT_CASES[k], exact_case_graphs(k)
    x = data.draw(ot.integer_rows(sig, n=1, max_abs=3))
    values = evaluate(graphs, x, sig)[0]
    jac = gradient(graphs, x, sig)[0]
    assert np.all(np.abs(values) < 2**50) and np.all(np.abs(jac) < 2**50)  # still exact in float64
    tensors = exact_tensors(x[0], sig)
    for g, v, row in zip(graphs, values, jac):
        val, grad = exact_value_and_gradient(g, tensors, sig)
        assert val == int(round(v)) % PRIME == exact_value(g, tensors)
        assert [int(a) for a in grad] == [int(round(b)) % PRIME for b in row], g.einsum


@pytest.mark.parametrize("k", range(len(EXACT_CASES)), ids=[s.describe() for s in EXACT_CASES])
@settings(max_examples=scaled(8))
@given(data=st.data())
def test_gradient_matches_finite_differences(k, data):
    """Five-point differences are exact for polynomials of degree <= 4 in each coordinate.

    Every candidate here has at most 4 factors, so the only error left is rounding,
    bounded by the invariant's absolute terms (:func:`optinv.testing.magnitude_bound`).
    """
    sig, graphs = EXACT_CASES[k], exact_case_graphs(k)
    x = data.draw(ot.rows(sig, n=2, degenerate=False))
    jac = gradient(graphs, x, sig)
    h = 0.05
    fd = np.empty_like(jac)
    for d in range(sig.dim):
        e = np.zeros(sig.dim)
        e[d] = h
        f = [evaluate(graphs, x + m * e, sig) for m in (-2, -1, 1, 2)]
        fd[:, :, d] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    terms = ot.magnitude_bound(graphs, sig, np.abs(x) + 2 * h)[:, :, None]
    assert np.all(np.abs(fd - jac) <= 1e-12 * terms / h + 1e-9 * np.abs(jac)), np.max(np.abs(fd - jac))


# -- known counts ----------------------------------------------------------------------------------


def test_l_max_3_n_max_4_gives_13_reaching_the_bound():
    sig = Signature.from_l_max(3)
    basis = select_basis(sig, 4)
    assert len(basis) == basis.rank == basis.bound.bound == 13 == float_bound(sig)
    assert basis.complete and all("exact" in inv.certificate for inv in basis.invariants)
    assert float_jacobian_rank(basis.graphs, sig) == exact_jacobian_rank(basis.graphs, sig) == 13


def test_hippynn_13_are_independent_and_complete():
    sig = Signature.from_l_max(3)
    report = check_invariants(list(ot.HIPPYNN_INVARIANTS), sig)
    assert report.all_independent and report.complete and report.rank == report.bound == 13
    assert report.float_rank == 13
    graphs = ot.as_graphs(ot.HIPPYNN_INVARIANTS, sig)
    assert exact_jacobian_rank(graphs, sig) == float_jacobian_rank(graphs, sig) == 13
    # every one of them is among the candidates with at most 4 factors
    keys = {g.key for g in candidates(sig, 4)}
    assert all(g.key in keys for g in graphs)


def test_check_reports_duplicates_and_dependent_entries():
    sig = Signature.from_l_max(2)
    report = check_invariants(["i,i->,v,v", "# a comment", "", "j,j->,one,one", "ij,ij->,q,q",
                               "ij,jk,kl,li->,q,q,q,q"], sig)
    e = report.entries
    assert [x.independent for x in e] == [True, False, True, False]  # tr q^4 = (tr q^2)^2 / 2
    assert e[1].duplicate_of == 0 and e[3].duplicate_of is None
    assert report.rank == 2 and not report.complete
    assert "same invariant as #0" in report.report()
    with pytest.raises(OptinvError, match="line 2"):
        check_invariants(["i,i->,v,v", "i,i->,v,x"], sig)
    with pytest.raises(OptinvError, match="no einsum strings"):
        check_invariants(["# nothing"], sig)


@pytest.mark.parametrize(
    "sig, n_max, rank",
    [
        (Signature.parse("v:1"), 4, 1),
        (Signature.parse("a:1,b:1"), 4, 3),
        (Signature.parse("a:1,b:1,p:2,q:2"), 4, 13),
        (Signature.channels({0: 3, 1: 3, 2: 3}), 4, 24),
        (Signature.parse("a:1,b:1,c:1", "SO3"), 3, 6),
        (Signature.parse("v:1,w:1:axial,q:2"), 4, 8),
    ],
    ids=str,
)
def test_known_multi_channel_counts_reach_their_bound(sig, n_max, rank):
    basis = select_basis(sig, n_max)
    assert basis.rank == basis.bound.bound == float_bound(sig) == rank
    assert basis.complete
    assert float_jacobian_rank(basis.graphs, sig) == rank


# -- the README table: every cell is the maximum achievable -------------------------------------------

# (l_max, degree) with hundreds or thousands of candidates (772, 602, 5847): not stacked here
EXPENSIVE = {(4, 6), (5, 5), (5, 6)}


@lru_cache(maxsize=None)
def _degree_graphs(l_max: int, degree: int):
    from optinv.algebra.candidates import graphs_of_degree

    return graphs_of_degree(Signature.from_l_max(l_max), degree)


@pytest.mark.parametrize("l_max", range(6))
def test_table_cells_are_the_maximum_achievable(l_max):
    sig = Signature.from_l_max(l_max)
    bound = float_bound(sig)
    for n_max in range(1, 7):
        basis = select_basis(sig, n_max)
        assert basis.bound.bound == bound
        assert basis.float_rank == basis.rank <= bound
        if not any((l_max, d) in EXPENSIVE for d in range(1, n_max + 1)):
            everything = [g for d in range(1, n_max + 1) for g in _degree_graphs(l_max, d)]
            assert basis.rank == float_jacobian_rank(everything, sig), (l_max, n_max)
        else:
            # too many candidates to stack: the cell must then reach the (independent) bound
            assert basis.rank == bound, (l_max, n_max)


# -- JSON round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sig, n_max",
    [(Signature.from_l_max(3), 4), (Signature.from_l_max(2, "SO3"), 6), (Signature.from_l_max(3), 2),
     (Signature.parse("v:1,w:1:axial,q:2"), 4), (Signature.channels({1: 2, 2: 2}), 3)],
    ids=str,
)
def test_basis_json_round_trip(sig, n_max):
    basis = select_basis(sig, n_max, request={"note": "test"})
    text = basis.to_json()
    back = Basis.from_json(text)
    assert back == basis
    assert back.to_json() == text
    assert back.request == {"note": "test"}
    data = back.to_dict()
    for key in ("signature", "invariants", "rank", "bound"):
        assert key in data
    assert all({"einsum", "degree"} <= set(inv) for inv in data["invariants"])
    assert [ContractionGraph.from_einsum(inv["einsum"], back.signature) for inv in data["invariants"]] == basis.graphs
    assert str(basis).count("\n") >= len(basis) + 2  # table rows, summary and proof


@settings(max_examples=scaled(15))
@given(sig=ot.signatures(max_tensors=3, max_rank=3, axial=True), n_max=st.integers(1, 3))
def test_basis_json_round_trip_random(sig, n_max):
    basis = select_basis(sig, n_max)
    assert Basis.from_json(basis.to_json()) == basis


@pytest.mark.parametrize("n_max", [0, -2, True])
def test_select_refuses_bad_n_max(n_max):
    with pytest.raises(OptinvError, match="n_max"):
        select_basis(Signature.from_l_max(1), n_max)


def test_selection_is_deterministic_and_seed_independent_in_rank():
    sig = Signature.from_l_max(4)
    a, b = select_basis(sig, 4, seed=0), select_basis(sig, 4, seed=0)
    assert a.einsums == b.einsums and a.to_json() == b.to_json()
    assert select_basis(sig, 4, seed=7).rank == a.rank == 22
