"""Strata: geometry against direct computation, ranks against brute-force float Jacobians.

Independent references used here:
* the orbit dimension from finite rotations of float points (SVD), not the
  engine's so(3) generators;
* the dimension of point-group strata from the tangent space of the family of
  symmetric neighbour configurations themselves (float neighbour sums,
  central differences over weights, symmetric displacements and rotations);
* ranks on strata from float Jacobians of every candidate (``evaluate.gradient``)
  restricted to the slice, with an SVD rank.
"""

from __future__ import annotations

import numpy as np
import pytest

from optinv.algebra.cartesian import coefficient_map, quaternion_matrix, transform_rows
from optinv.algebra.candidates import candidates
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import gradient
from optinv.algebra.modular import modular_rank
from optinv.algebra.rank import float_rank
from optinv.algebra.signature import Signature
from optinv.algebra.strata import (
    ENVIRONMENTS,
    StrataRows,
    catalogue,
    fixed_slice,
    float_point_and_tangent,
    geometry,
    load_user_strata,
    neighbour_sum_row,
    parse_strata_spec,
    stratum_by_name,
)

SIGNATURES = [Signature.from_l_max(2), Signature.from_l_max(3), Signature.from_l_max(4),
              Signature.parse("a:1,b:1,q:2"), Signature.parse("v:1,w:1:axial,q:2")]


def orbit_dim_by_rotations(x: np.ndarray, sig: Signature) -> int:
    """Rank of finite differences of small rotations about three axes (no generators involved)."""
    h = 1e-6
    cols = []
    for axis in np.eye(3):
        q_plus = np.concatenate([[np.cos(h / 2)], np.sin(h / 2) * axis])
        q_minus = np.concatenate([[np.cos(h / 2)], -np.sin(h / 2) * axis])
        xp = transform_rows(x[None], sig, quaternion_matrix(q_plus))[0]
        xm = transform_rows(x[None], sig, quaternion_matrix(q_minus))[0]
        cols.append((xp - xm) / (2 * h))
    tangents = np.array(cols)
    scale = max(1.0, np.abs(tangents).max())
    return float_rank(tangents / scale, rtol=1e-7)[0]


@pytest.mark.parametrize("sig", SIGNATURES, ids=str)
def test_geometry_matches_direct_computation(sig):
    rng = np.random.default_rng(5)
    for s in catalogue(sig):
        geo = geometry(s, sig, seed=3)
        x, tangents = float_point_and_tangent(s, sig, rng)
        assert geo.orbit_dim == orbit_dim_by_rotations(x, sig), s.name
        # the stratum's dimension: its own tangent rows plus the orbit directions, from float data
        h = 1e-6
        rot = []
        for axis in np.eye(3):
            q = np.concatenate([[np.cos(h / 2)], np.sin(h / 2) * axis])
            rot.append((transform_rows(x[None], sig, quaternion_matrix(q))[0] - x) / h)
        full = np.vstack([tangents / np.abs(tangents).max(), np.array(rot) / max(1.0, np.abs(rot).max())])
        assert geo.dim == float_rank(full, rtol=1e-5)[0], s.name
        assert 0 <= geo.bound <= sig.dim - 0


def test_known_strata_of_l_max_3():
    """Counts a chemist can do by hand (BACKGROUND.md: only t survives at a tetrahedral centre)."""
    sig = Signature.from_l_max(3)
    known = {  # name: (dim, orbit dim, bound)
        "generic": (16, 3, 13),
        "only v": (4, 2, 2),  # s and a lone vector: its orbit is a sphere
        "only t": (8, 3, 5),  # s and 7 - 3
        "q uniaxial": (14, 3, 11),  # s, v, t generic; q: 1 eigenvalue gap + 2 axis angles
        "Td": (5, 3, 2),  # s and the xyz octupole
        "Oh": (1, 0, 1),  # only s survives
        "Cinfv": (6, 2, 4),  # every tensor axial along one axis: s, v, q, t magnitudes
    }
    for name, (dim, orbit, bound) in known.items():
        geo = geometry(stratum_by_name(sig, name), sig)
        assert (geo.dim, geo.orbit_dim, geo.bound) == (dim, orbit, bound), name


def _float_neighbour_row(sig: Signature, positions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Float neighbour sums sum_j w_l r_j^{(x)l}, projected to the traceless part by least squares."""
    out = []
    for k, spec in enumerate(sig.tensors):
        l = spec.rank
        total = np.zeros((3,) * l)
        for r in positions:
            outer = np.array(1.0)
            for _ in range(l):
                outer = np.multiply.outer(outer, r)
            total = total + weights[k] * outer
        C = coefficient_map(l).reshape(-1, 2 * l + 1).astype(float)
        out.append(np.linalg.lstsq(C, total.reshape(-1), rcond=None)[0])
    return np.concatenate(out)


def _float_symmetric_displacements(env) -> np.ndarray:
    """Displacements of the neighbours that keep the configuration's point group (float basis)."""
    pos = np.array(env.neighbours, dtype=float)
    n = len(pos)
    mats = [np.array(g, dtype=float) for g in env.finite]
    conditions = []
    for g in mats:
        # g maps neighbour j to neighbour perm[j]; a symmetric displacement has d[perm[j]] = g d[j]
        perm = [int(np.argmin(np.linalg.norm(pos - g @ r, axis=1))) for r in pos]
        P = np.zeros((3 * n, 3 * n))
        for j, pj in enumerate(perm):
            P[3 * pj : 3 * pj + 3, 3 * j : 3 * j + 3] = g
        conditions.append(P - np.eye(3 * n))
    for axis in env.continuous:
        a = np.array(axis, dtype=float)
        J = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
        # on the axis neighbours stay; the generator must fix the displacement
        conditions.append(np.kron(np.eye(n), J))
    A = np.vstack(conditions)
    _, sv, vt = np.linalg.svd(A)
    null = vt[np.sum(sv > 1e-9):]
    return null


@pytest.mark.parametrize("l_max", [2, 3, 4])
@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: e.name)
def test_point_group_strata_are_the_symmetric_configurations(env, l_max):
    """The exact neighbour sums are fixed by the group, and the family's float tangent has the stratum's dimension."""
    sig = Signature.from_l_max(l_max)
    stratum = next(s for s in catalogue(sig) if env.name in s.name.split(" = "))
    # 1. exact: the configuration's tensors are fixed by the point group
    row = np.array(neighbour_sum_row(sig, env.neighbours, weights=range(2, 2 + len(sig.tensors))), dtype=object)
    fixed = fixed_slice(sig, set(sig.names), env.finite, env.continuous).astype(float)
    sol, *_ = np.linalg.lstsq(fixed.T, row.astype(float), rcond=None)
    assert np.allclose(fixed.T @ sol, row.astype(float), atol=1e-9)
    for g in env.finite:  # and the float rotation of the row by each generator is the row itself
        rotated = transform_rows(row.astype(float)[None], sig, np.array(g, dtype=float))[0]
        assert np.allclose(rotated, row.astype(float), atol=1e-9)
    # 2. the family of symmetric configurations (weights per tensor, symmetric displacements,
    #    rotations) has the stratum's dimension
    rng = np.random.default_rng(1)
    pos0 = np.array(env.neighbours, dtype=float)
    w0 = rng.uniform(0.5, 1.5, size=len(sig.tensors))
    disp = _float_symmetric_displacements(env)
    h = 1e-5

    def row_of(params):
        w = w0 + params[: len(w0)]
        d = params[len(w0) : len(w0) + len(disp)] @ disp if len(disp) else np.zeros(3 * len(pos0))
        rot = params[len(w0) + len(disp) :]
        q = np.concatenate([[1.0], rot / 2])
        R = quaternion_matrix(q / np.linalg.norm(q))
        return _float_neighbour_row(sig, (pos0 + d.reshape(-1, 3)) @ R.T, w)

    n_par = len(w0) + len(disp) + 3
    jac = []
    for k in range(n_par):
        e = np.zeros(n_par)
        e[k] = h
        jac.append((row_of(e) - row_of(-e)) / (2 * h))
    jac = np.array(jac)
    family_dim = float_rank(jac / np.abs(jac).max(), rtol=1e-6)[0]
    assert family_dim == geometry(stratum, sig).dim


@pytest.mark.parametrize("sig,n_max", [(Signature.from_l_max(3), 4), (Signature.from_l_max(2), 3),
                                       (Signature.parse("v:1,w:1:axial,q:2"), 3)], ids=str)
def test_ranks_on_strata_match_brute_force_float_jacobians(sig, n_max):
    pool = list(candidates(sig, n_max))
    strata = catalogue(sig)
    exact = StrataRows(sig, strata, seed=2).rows(pool)
    rng = np.random.default_rng(9)
    for s, rows in zip(strata, exact):
        x, tangent = float_point_and_tangent(s, sig, rng)
        # a degree-d invariant's gradient scales as |x|^(d-1): divide by that, not by the row's own
        # norm, which would blow rounding noise on the stratum up to unit rows
        scale = np.array([np.linalg.norm(x) ** (g.degree - 1) for g in pool])[:, None]
        jac = gradient(pool, x[None], sig)[0] @ (tangent / np.abs(tangent).max()).T / scale
        assert modular_rank(rows) == float_rank(jac, rtol=1e-12)[0], s.name


def test_generic_basis_loses_rank_where_the_issue_says():
    """The generic (3,4) basis: rank 2 on 'only t' (|t|^2 and s), where 4 factors reach 3."""
    from optinv.algebra.select import select_basis

    sig = Signature.from_l_max(3)
    b = select_basis(sig, 4, strata=catalogue(sig))
    ranks = {s.name: (s.rank, s.max_rank) for s in b.strata}
    assert ranks["only t"] == (2, 3)
    assert ranks["generic"] == (13, 13)
    assert not b.flexible


def test_user_strata_read_exactly(tmp_path):
    sig = Signature.from_l_max(1)
    f = tmp_path / "rows.txt"
    f.write_text("# two environments\n1, 0, 0, 0\n0.1 1/3 0 2\n")
    strata = load_user_strata(f, sig)
    assert [s.name for s in strata] == ["rows.txt#0", "rows.txt#1"]
    from fractions import Fraction

    assert strata[1].point == (Fraction(1, 10), Fraction(1, 3), Fraction(0), Fraction(2))
    # a zero vector: only s can change; a nonzero one: s and |v|
    assert geometry(strata[0], sig).bound == 4 - 0
    assert geometry(strata[1], sig).bound == 4 - 2
    np.save(tmp_path / "rows.npy", np.array([[1.0, 0.5, 0.25, 0.125]]))
    (s,) = load_user_strata(tmp_path / "rows.npy", sig)
    assert s.point == (Fraction(1), Fraction(1, 2), Fraction(1, 4), Fraction(1, 8))


@pytest.mark.parametrize("content,message", [
    ("1 2 3\n", "row 0 has 3 numbers, expected D=4"),
    ("1 2 x 4\n", "line 1: expected numbers"),
    ("# nothing\n", "no rows"),
])
def test_user_strata_bad_files(tmp_path, content, message):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    with pytest.raises(OptinvError, match=message):
        load_user_strata(f, Signature.from_l_max(1))


def test_user_strata_bad_npy(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(OptinvError, match="finite"):
        load_user_strata(tmp_path / "nan.npy", Signature.from_l_max(1))
    np.save(tmp_path / "str.npy", np.array([["a", "b", "c", "d"]]))
    with pytest.raises(OptinvError, match="real numbers"):
        load_user_strata(tmp_path / "str.npy", Signature.from_l_max(1))
    with pytest.raises(OptinvError, match="no such file"):
        load_user_strata(tmp_path / "missing.npy", Signature.from_l_max(1))


def test_strata_spec():
    sig = Signature.from_l_max(3)
    assert [s.kind for s in parse_strata_spec("vanishing", sig)][:2] == ["generic", "vanishing"]
    assert [s.name for s in parse_strata_spec("Td,Oh", sig)] == ["generic", "Td", "Oh"]
    assert len(parse_strata_spec(None, sig)) == len(catalogue(sig))
    with pytest.raises(OptinvError, match="not a kind"):
        parse_strata_spec("tetrahedral", sig)
    with pytest.raises(OptinvError, match="unknown stratum"):
        stratum_by_name(sig, "nope")


def test_duplicate_slices_are_merged():
    names = [s.name for s in catalogue(Signature.from_l_max(2))]
    assert "Td = Oh" in names and len(names) == len(set(names))
