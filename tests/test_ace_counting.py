"""ACE counting: Molien-Weyl dimensions, evaluated product ranks, ACE mode and the ``optinv ace`` CLI."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pytest

from optinv.algebra.ace import ace_report, ace_table
from optinv.algebra.candidates import graphs_of_degree
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import PRIME, exact_tensors, exact_value
from optinv.algebra.linear_count import product_span_dimensions, product_terms, values_mod
from optinv.algebra.molien import ace_linear_counts, ace_signature, invariant_dimensions
from optinv.algebra.modular import ModularEchelon, modular_rank
from optinv.algebra.signature import Signature
from optinv.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _series_coefficients(factors_degrees, nu_max):
    """Coefficients of prod 1/(1 - t^d) (a free algebra with generators of these degrees)."""
    c = [1] + [0] * nu_max
    for d in factors_degrees:
        for k in range(d, nu_max + 1):
            c[k] += c[k - d]
    return c


# -- Molien-Weyl: known values ---------------------------------------------------------


@pytest.mark.parametrize("group", ["O3", "SO3"])
def test_scalar_and_vector(group):
    # n_rad=1, l_max=1: invariants are polynomials in s and |v|^2
    assert ace_linear_counts(1, 1, 8, group) == _series_coefficients([1, 2], 8)


@pytest.mark.parametrize("n_rad", [1, 2, 3, 5])
def test_scalars_only_count_all_monomials(n_rad):
    assert ace_linear_counts(n_rad, 0, 5) == [comb(n_rad + k - 1, k) for k in range(6)]


def test_single_quadrupole_is_free_on_tr_q2_tr_q3():
    sig = Signature.parse("q:2")
    assert invariant_dimensions(sig, 12, "O3") == _series_coefficients([2, 3], 12)
    assert invariant_dimensions(sig, 12, "SO3") == _series_coefficients([2, 3], 12)


def test_three_vectors_pseudoscalar_and_axial_parity():
    sig = Signature.parse("a:1,b:1,c:1")
    # six dot products; a.(b x c) only for SO(3)
    assert invariant_dimensions(sig, 3, "O3") == [1, 0, 6, 0]
    assert invariant_dimensions(sig, 3, "SO3") == [1, 0, 6, 1]
    # with c axial, a.(b x c) is a true O(3) invariant, and a.c, b.c are not
    axial = Signature.parse("a:1,b:1,c:1:axial", "O3")
    assert invariant_dimensions(axial, 3) == [1, 0, 4, 1]


def test_two_vectors_so3_equals_o3():
    # no pseudoscalar can be built from two vectors and scalars
    assert ace_linear_counts(2, 1, 5, "O3") == ace_linear_counts(2, 1, 5, "SO3")


def test_large_case_is_exact_integers():
    counts = ace_linear_counts(6, 4, 4, "SO3")
    assert all(isinstance(c, int) for c in counts)
    assert counts[1] == 6 and sum(counts[1:]) == 62941


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_nu_max(bad):
    with pytest.raises(OptinvError, match="nu_max"):
        invariant_dimensions(Signature.from_l_max(1), bad)


def test_bad_ace_arguments():
    with pytest.raises(OptinvError, match="n_rad"):
        ace_linear_counts(0, 1, 2)
    with pytest.raises(OptinvError, match="l_max"):
        ace_linear_counts(1, -1, 2)
    with pytest.raises(OptinvError, match="group"):
        ace_linear_counts(1, 1, 2, "U1")


# -- cross-check: rank of all evaluated contraction products -------------------------------


@pytest.mark.parametrize("group", ["O3", "SO3"])
@pytest.mark.parametrize("n_rad,l_max", [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)])
def test_molien_equals_rank_of_products(n_rad, l_max, group):
    sig = ace_signature(n_rad, l_max, group)
    counted = product_span_dimensions(sig, 4)
    assert counted.dimensions == invariant_dimensions(sig, 4)
    assert max(counted.dimensions) < counted.n_points  # ranks not capped by too few points


@pytest.mark.parametrize("group", ["O3", "SO3"])
def test_molien_equals_rank_of_products_single_rank3(group):
    sig = ace_signature(1, 3, group)
    assert product_span_dimensions(sig, 5).dimensions == invariant_dimensions(sig, 5)


@pytest.mark.parametrize("text", ["w:1:axial,v:1,u:1", "w:2:axial,q:2,u:1"])
def test_molien_equals_rank_of_products_axial(text):
    for group in ("O3", "SO3"):
        sig = Signature.parse(text, group)
        assert product_span_dimensions(sig, 4).dimensions == invariant_dimensions(sig, 4)


def test_products_include_disconnected_and_two_epsilon_terms():
    # O(3), three vectors, degree 6: (a.(b x c))^2 is a product of two eps-graphs
    sig = Signature.parse("a:1,b:1,c:1", "O3")
    counted = product_span_dimensions(sig, 6)
    assert counted.dimensions == invariant_dimensions(sig, 6)
    assert counted.n_products[6] > counted.n_connected[6]


def test_values_mod_matches_engine_exact_value():
    sig = ace_signature(1, 3, "SO3")
    graphs = graphs_of_degree(sig, 3) + graphs_of_degree(sig, 4)
    rng = np.random.default_rng(5)
    points = rng.integers(0, PRIME, size=(3, sig.dim), dtype=np.int64)
    batch = values_mod(graphs, points, sig)
    for k in range(points.shape[0]):
        tensors = exact_tensors(points[k], sig)
        assert [exact_value(g, tensors) for g in graphs] == batch[:, k].tolist()


def test_graph_parity_counts_tensor_parities_only():
    sig = Signature.parse("w:1:axial,v:1,u:1", "SO3")
    (g,) = [g for g in graphs_of_degree(sig, 3) if g.has_epsilon]
    assert g.parity(sig) == 1  # w.(v x u): axial . axial
    sig = Signature.parse("a:1,b:1,c:1", "SO3")
    (g,) = graphs_of_degree(sig, 3)
    assert g.parity(sig) == -1


def test_modular_rank_agrees_with_the_incremental_echelon():
    rng = np.random.default_rng(0)
    for shape, r in [((7, 5), 3), ((4, 9), 4), ((6, 6), 0), ((10, 8), 8)]:
        m = (rng.integers(0, 50, size=(shape[0], r)) @ rng.integers(0, 50, size=(r, shape[1]))) % PRIME
        echelon = ModularEchelon(shape[1])
        for row in m:
            echelon.add(row)
        assert modular_rank(m) == echelon.rank == min(r, *shape)


def test_product_terms_are_multisets():
    assert list(product_terms([1, 2], 3)) == [(0, 0, 0), (0, 1)]


# -- ACE mode ----------------------------------------------------------------------


@pytest.mark.parametrize("n_rad,l_max", [(2, 1), (1, 2), (3, 2), (2, 3), (1, 4)])
def test_engine_bound_equals_formula(n_rad, l_max):
    r = ace_report(n_rad, l_max, 2)
    assert r.bound == r.formula_bound == n_rad * (l_max + 1) ** 2 - 3
    assert r.orbit_dim == 3


def test_bound_exceptions_scalars_and_single_vector():
    for n_rad in (1, 2, 4):
        r = ace_report(n_rad, 0, 2)
        assert (r.bound, r.orbit_dim) == (n_rad, 0)
        assert "only scalars" in r.bound_note()
    r = ace_report(1, 1, 3)
    assert (r.bound, r.orbit_dim, r.formula_bound) == (2, 2, 1)
    assert [d.selected for d in r.per_degree] == [1, 1, 0]


@pytest.mark.parametrize("group", ["O3", "SO3"])
def test_ace_report_counts(group):
    r = ace_report(2, 2, 4, group)
    assert [d.nu for d in r.per_degree] == [1, 2, 3, 4]
    assert [d.linear for d in r.per_degree] == ace_linear_counts(2, 2, 4, group)[1:]
    assert r.selected_total == len(r.basis) == r.bound == 15 and r.complete
    assert all(d.selected <= d.linear for d in r.per_degree)
    data = json.loads(r.to_json())
    assert data["bound"] == 15 and data["per_degree"][1] == {"nu": 2, "linear": r.per_degree[1].linear,
                                                             "selected": r.per_degree[1].selected}


def test_ace_table_markdown():
    t = ace_table([1, 2], [0, 1], [2, 3])
    md = t.markdown().splitlines()
    assert md[0] == "| n_rad | l_max | D | bound | nu_max=2 | nu_max=3 |"
    assert md[3] == "| 1 | 1 | 4 | 2 | **2** / 3 | **2** / 5 |"
    assert len(md) == 2 + 4


def test_docs_table_is_current():
    from optinv.ace_cli import table_markdown

    text = (ROOT / "docs" / "ace_table.md").read_text()
    assert table_markdown(ace_table(), "optinv ace --table") in text


# -- CLI ---------------------------------------------------------------------------


def test_cli_json(tmp_path, capsys):
    path = tmp_path / "ace.json"
    assert main(["ace", "--n-rad", "2", "--l-max", "2", "--nu-max", "3", "--json", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "linear" in out and "selected" in out and "ij,ij->,q0,q0" in out
    data = json.loads(path.read_text())
    assert data["bound"] == 15
    assert [d["nu"] for d in data["per_degree"]] == [1, 2, 3]
    assert [d["linear"] for d in data["per_degree"]] == [2, 9, 26]
    assert sum(d["selected"] for d in data["per_degree"]) == 15
    assert set(data["per_degree"][0]) == {"nu", "linear", "selected"}


def test_cli_so3_and_verify(capsys):
    assert main(["ace", "--n-rad", "1", "--l-max", "3", "--nu-max", "4", "--group", "so3", "--verify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[SO3, D=16]" in out and "= Molien-Weyl" in out


def test_cli_table(capsys):
    assert main(["ace", "--table", "--n-rad", "2", "--l-max", "1", "--nu-max", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 1 | 8 | 5 | **5** / 8 | **5** / 18 |" in out


@pytest.mark.parametrize(
    "argv, word",
    [
        (["ace", "--n-rad", "0", "--l-max", "1", "--nu-max", "2"], "n_rad"),
        (["ace", "--n-rad", "1", "--l-max", "-1", "--nu-max", "2"], "l_max"),
        (["ace", "--n-rad", "1", "--l-max", "1", "--nu-max", "0"], "nu_max"),
        (["ace", "--n-rad", "1", "--l-max", "1", "--nu-max", "2", "--group", "u1"], "group"),
        (["ace", "--l-max", "2"], "--n-rad"),
        (["ace", "--table", "--nu-max", "1"], "--nu-max"),
        (["ace", "--n-rad", "1", "--l-max", "1", "--nu-max", "2", "--json", "/nonexistent/dir/x.json"], "--json"),
    ],
)
def test_cli_bad_input_exit_2(argv, word, capsys):
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optinv: error:") and word in err and "\n" not in err
