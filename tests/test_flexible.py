"""Flexible selection and the completeness of the candidate set.

Independent references used here:
* brute force over every subset of a small candidate pool (sizes and costs);
* float Jacobian ranks on every stratum (``evaluate.gradient`` + SVD);
* the maximum functional rank of ALL invariant polynomials of degree <= n,
  from linear algebra on monomials (no graphs involved): the polynomials
  killed by the three so(3) derivations, and for O(3) even under the
  inversion.  This is what "maximal for n_max" claims.
"""

from __future__ import annotations

import itertools
import re
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optinv.algebra.basis import Basis
from optinv.algebra.cartesian import coefficients_from_tensor, tensor_from_coefficients
from optinv.algebra.candidates import candidates
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import gradient
from optinv.algebra.modular import PRIME
from optinv.algebra.flexible import search_flexible, select_flexible_basis
from optinv.algebra.modular import modular_rank
from optinv.algebra.rank import float_rank
from optinv.algebra.select import check_invariants, select_basis
from optinv.algebra.signature import Signature, TensorSpec
from optinv.algebra.strata import StrataRows, catalogue, float_point_and_tangent


def test_flexible_l3_n4_reaches_every_maximum_and_the_generic_basis_does_not():
    sig = Signature.from_l_max(3)
    flexible = select_flexible_basis(sig, 4)
    generic = select_basis(sig, 4, strata=catalogue(sig))
    assert flexible.complete and flexible.flexible
    assert len(flexible) == 14 and "proven the fewest" in flexible.selection
    lost = {s.name: s.max_rank - s.rank for s in generic.strata if s.rank < s.max_rank}
    assert lost and all(lost[name] > 0 for name in ("only t", "q = 0", "v = 0"))
    # independent: float ranks of the chosen set on every stratum equal the maxima
    rng = np.random.default_rng(4)
    for stratum, rank in zip(catalogue(sig), flexible.strata):
        x, tangent = float_point_and_tangent(stratum, sig, rng)
        scale = np.array([np.linalg.norm(x) ** (g.degree - 1) for g in flexible.graphs])[:, None]
        jac = gradient(flexible.graphs, x[None], sig)[0] @ (tangent / np.abs(tangent).max()).T / scale
        assert float_rank(jac, rtol=1e-12)[0] == rank.max_rank, stratum.name


def _feasible(matrices, members, targets) -> bool:
    return all(modular_rank(M[list(members)]) == t for M, t in zip(matrices, targets))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(4, 9), k=st.integers(2, 4), seed=st.integers(0, 10_000))
def test_search_matches_brute_force_on_random_matroids(n, k, seed):
    """Random low-rank row sets standing in for strata: smallest, then cheapest, by exhaustion."""
    rng = np.random.default_rng(seed)
    matrices = []
    for _ in range(k):
        width = int(rng.integers(1, 5))
        rank = int(rng.integers(1, width + 1))
        A = rng.integers(0, 3, size=(n, rank)) @ rng.integers(-2, 3, size=(rank, width))
        A[rng.random(n) < 0.3] = 0  # candidates that do nothing on this stratum
        matrices.append(A % PRIME)
    targets = [modular_rank(M) for M in matrices]
    costs = [int(c) for c in rng.integers(1, 20, size=n)]
    found = search_flexible(matrices, targets, costs, [1] * n, 0, PRIME, max_nodes=10**7)
    assert found.size_proven and found.cost_proven
    assert _feasible(matrices, found.members, targets)
    best = None
    for size in range(0, n + 1):
        sets = [c for c in itertools.combinations(range(n), size) if _feasible(matrices, c, targets)]
        if sets:
            best = (size, min(sum(costs[i] for i in c) for c in sets))
            break
    assert (len(found.members), sum(costs[i] for i in found.members)) == best


# -- the candidate set is complete: every invariant polynomial of degree <= n ---------------------


def _generator_matrices(sig: Signature) -> list[np.ndarray]:
    """Integer matrices (D, D) of the three infinitesimal rotations on the coefficients, rebuilt here."""
    eps = np.zeros((3, 3, 3), dtype=np.int64)
    for i, j, k in itertools.permutations(range(3)):
        eps[i, j, k] = round(np.linalg.det(np.eye(3)[[i, j, k]]))
    mats = []
    for a in range(3):
        J = -eps[a]
        A = np.zeros((sig.dim, sig.dim), dtype=np.int64)
        for spec, sl in zip(sig.tensors, sig.slices().values()):
            for col in range(spec.size):
                e = np.zeros(spec.size, dtype=np.int64)
                e[col] = 1
                T = tensor_from_coefficients(e, spec.rank)
                dT = sum(np.moveaxis(np.tensordot(T, J, axes=([s], [1])), -1, s) for s in range(spec.rank)) \
                    if spec.rank else np.zeros(())
                A[sl, sl.start + col] = coefficients_from_tensor(np.asarray(dT), spec.rank) if spec.rank else 0
        mats.append(A)
    return mats


def _nullspace_mod(A: np.ndarray, p: int = PRIME) -> np.ndarray:
    """Basis of the right null space of A over GF(p), by row reduction."""
    A = A.copy() % p
    rows, cols = A.shape
    pivots, r = [], 0
    for c in range(cols):
        nz = np.flatnonzero(A[r:, c]) if r < rows else np.array([], dtype=int)
        if nz.size == 0:
            continue
        i = r + int(nz[0])
        A[[r, i]] = A[[i, r]]
        A[r] = A[r] * pow(int(A[r, c]), p - 2, p) % p
        others = np.flatnonzero(A[:, c])
        others = others[others != r]
        A[others] = (A[others] - np.outer(A[others, c], A[r]) % p) % p
        pivots.append(c)
        r += 1
        if r == rows:
            break
    free = [c for c in range(cols) if c not in pivots]
    basis = np.zeros((len(free), cols), dtype=np.int64)
    for k, f in enumerate(free):
        basis[k, f] = 1
        for row, pc in enumerate(pivots):
            basis[k, pc] = (-A[row, f]) % p
    return basis


def max_invariant_rank(sig: Signature, n_max: int, seed: int = 0) -> int:
    """Functional rank of all invariant polynomials of degree <= n_max, from monomials alone."""
    p = PRIME
    gens = _generator_matrices(sig)
    parity = np.concatenate([[t.parity] * t.size for t in sig.tensors])
    x = np.random.default_rng(seed).integers(0, p, size=sig.dim)
    rows = []
    for d in range(1, n_max + 1):
        monos = [m for m in itertools.combinations_with_replacement(range(sig.dim), d)
                 if sig.group == "SO3" or np.prod(parity[list(m)]) == 1]
        if not monos:
            continue
        index = {m: k for k, m in enumerate(monos)}
        # the derivation sum_ij A_ij x_j d/dx_i maps monomial m to sum over its factors x_i -> (A x)_i
        eqs = np.zeros((3 * len(monos), len(monos)), dtype=np.int64)
        for g, A in enumerate(gens):
            for k, m in enumerate(monos):
                for pos, i in enumerate(m):
                    rest = m[:pos] + m[pos + 1:]
                    for j in np.flatnonzero(A[i]):
                        target = tuple(sorted(rest + (int(j),)))
                        if target in index:  # parity-filtered spaces are closed under the derivation
                            eqs[g * len(monos) + index[target], k] = (eqs[g * len(monos) + index[target], k] + A[i, j]) % p
        null = _nullspace_mod(eqs)
        if null.shape[0] == 0:
            continue
        # gradient of each monomial at x, mod p
        grads = np.zeros((len(monos), sig.dim), dtype=np.int64)
        for k, m in enumerate(monos):
            for pos, i in enumerate(m):
                rest = m[:pos] + m[pos + 1:]
                val = 1
                for j in rest:
                    val = val * int(x[j]) % p
                grads[k, i] = (grads[k, i] + val) % p
        for c in null:
            acc = np.zeros(sig.dim, dtype=np.int64)
            for k in np.flatnonzero(c):
                acc = (acc + int(c[k]) * grads[k]) % p
            rows.append(acc)
    return modular_rank(np.array(rows)) if rows else 0


@st.composite
def small_signatures(draw):
    n = draw(st.integers(1, 3))
    specs = []
    for k in range(n):
        rank = draw(st.integers(0, 2))
        axial = draw(st.booleans()) and rank > 0
        specs.append(TensorSpec(f"x{k}", rank, -((-1) ** rank) if axial else 0))
    sig = Signature(tuple(specs), draw(st.sampled_from(["O3", "SO3"])))
    if sig.dim > 8:
        sig = Signature(tuple(specs[:2]), sig.group)
    return sig


@settings(max_examples=10, deadline=None)
@given(sig=small_signatures(), n_max=st.integers(1, 4))
def test_no_invariant_polynomial_raises_a_rank_claimed_maximal(sig, n_max):
    """Would have caught the missing pseudoscalar products (a:1,b:1,w:1:axial reached 5 of 6)."""
    basis = select_basis(sig, n_max)
    assert basis.rank == max_invariant_rank(sig, n_max)


def test_axial_products_reach_the_bound():
    sig = Signature.parse("a:1,b:1,w:1:axial")
    assert max_invariant_rank(sig, 4) == 6
    basis = select_basis(sig, 4)
    assert basis.complete and basis.rank == 6
    assert any(len(g.einsum.split("->")[0].split(",")) == 4 and "eps" not in g.einsum for g in basis.graphs)


def test_two_epsilon_and_product_strings_are_accepted():
    sig = Signature.parse("a:1,b:1,w:1:axial")
    report = check_invariants(["i,i,j,j->,a,w,b,w", "i,j,k,l,ijm,klm->,a,w,b,w,eps,eps"], sig)
    assert report.all_independent and report.rank == 2
    with pytest.raises(OptinvError, match="disconnected"):
        check_invariants(["i,i,j,j->,a,a,b,b"], sig)  # a product of two invariants adds nothing
    with pytest.raises(OptinvError, match="at most 2"):
        check_invariants(["ijk,ijl,klm,m->,eps,eps,eps,w"], Signature.parse("w:1:axial", "SO3"))


def test_flexible_json_round_trip():
    b = select_flexible_basis(Signature.from_l_max(2), 4)
    again = Basis.from_json(b.to_json())
    assert again == b and again.strata == b.strata and again.selection == b.selection
    data = json.loads(b.to_json())
    assert {"name", "bound", "rank", "max_rank"} <= set(data["strata"][0])


def test_flexible_refuses_bad_arguments():
    sig = Signature.from_l_max(2)
    with pytest.raises(OptinvError, match="n_max"):
        select_flexible_basis(sig, 0)
    with pytest.raises(OptinvError, match="generic"):
        select_flexible_basis(sig, 3, strata=catalogue(sig)[1:])


def test_node_budget_is_reported_honestly():
    b = select_flexible_basis(Signature.from_l_max(4), 4, max_nodes=200)
    assert b.complete and b.flexible  # the greedy cover always reaches every maximum
    assert "best found" in b.selection and "200 nodes" in b.selection
    assert select_flexible_basis(Signature.from_l_max(4), 4, max_nodes=200).einsums == b.einsums  # deterministic


# -- command line and verify -------------------------------------------------------------------------


def _run(capsys, *argv):
    from optinv.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_basis_flexible_and_generic_strata_tables(capsys, tmp_path):
    code, out, _ = _run(capsys, "basis", "--l-max", "3", "--n-max", "4", "--quiet")
    assert code == 0 and "ranks on strata" in out and "loses" in out
    path = tmp_path / "flex.json"
    code, out, _ = _run(capsys, "basis", "--l-max", "3", "--n-max", "4", "--flexible", "--quiet", "--json", path)
    assert code == 0 and "14 invariants" in out and "17 of 17 strata at the maximum achievable" in out
    data = json.loads(path.read_text())
    assert data["request"]["flexible"] is True and len(data["strata"]) == 17
    code, out, _ = _run(capsys, "basis", "--l-max", "3", "--n-max", "4", "--strata", "none", "--quiet")
    assert code == 0 and "ranks on strata" not in out


def test_cli_check_reports_what_a_list_misses(capsys, tmp_path):
    from optinv.codegen.catalog import HIPPYNN_INVARIANTS

    f = tmp_path / "hippynn.txt"
    f.write_text("\n".join(HIPPYNN_INVARIANTS) + "\n")
    rows = tmp_path / "rows.txt"
    rows.write_text("1 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0\n")  # s and a pure xyz octupole: the Td environment
    code, out, _ = _run(capsys, "check", f, "--strata", f"vanishing,Td,{rows}")
    assert code == 0
    assert "q = 0" in out and "loses 1" in out and "rows.txt#0" in out
    assert re.search(r"Td\s+point-group\s+5\s+3\s+2\s+2\s+2", out)


def test_cli_table_flexible(capsys):
    code, out, _ = _run(capsys, "table", "--flexible", "--l-min", "2", "--l-max", "2", "--n-min", "3", "--n-max", "4",
                        "--quiet")
    assert code == 0
    assert "| *invariants* | | 5 / 5 / - | 6 / 6 / - |" in out
    assert "| generic | 6 | 5 / 5 / 5 | 6 / 6 / 6 |" in out


@pytest.mark.parametrize("argv,needle", [
    (["basis", "--strata", "tetrahedral"], "not a kind"),
    (["basis", "--flexible", "--strata", "none"], "needs strata"),
    (["basis", "--search-nodes", "-3"], "integer >= 0"),
    (["compile", "--invariants", "x.txt", "--flexible", "--name", "m"], "goes with --n-max"),
    (["check", "nofile.txt", "--n-max", "0"], "no such file"),
])
def test_cli_bad_strata_arguments(capsys, argv, needle):
    from optinv.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a malformed value before the command runs
        code = exc.code
    assert code == 2 and needle in capsys.readouterr().err


def test_verify_checks_the_ranks_on_strata(tmp_path, capsys):
    """A module whose metadata overstates its rank on a stratum fails verify's rank property."""
    from optinv.cli import main
    from optinv.codegen.package import compile_request

    def verify_main(argv):
        return main(["verify", *argv])

    path = compile_request({"l_max": 2, "group": "O3", "n_max": 3}, "m", tmp_path)
    code = verify_main([str(path), "--max-examples", "5", "--backends", "c-f64", "--properties", "rank"])
    out = capsys.readouterr().out
    assert code == 0 and "kernels agree" in out, out
    meta_path = path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    only_q = next(s for s in meta["basis"]["strata"] if s["name"] == "only q")
    only_q["rank"] += 1
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    # integrity (byte comparison with the regeneration) already refuses the edited metadata ...
    code = verify_main([str(path), "--max-examples", "5", "--backends", "c-f64", "--properties", "rank"])
    out = capsys.readouterr().out
    assert code == 1 and "metadata.json differs from the regenerated file" in out, out
    # ... and the rank property, run on the unverified package, names the stratum
    code = verify_main([str(path), "--max-examples", "5", "--backends", "c-f64", "--properties", "rank",
                        "--run-unverified"])
    out = capsys.readouterr().out
    assert code == 1 and "stratum only q: metadata says rank 4" in out, out
