"""Exact coefficient maps (hippynn convention) and the action of O(3) on coefficients.

References used here are independent of ``optinv.algebra.cartesian``'s own
construction: polynomials and their Laplacian (sympy) for "symmetric traceless
and full", a slot-by-slot rotation written out in this file for "rotations
commute with the map", and finite rotations for the so(3) tangents.
"""

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import optinv.testing as ot
from optinv.algebra.cartesian import (
    GENERATORS,
    coefficient_map,
    coefficients_from_tensor,
    free_indices,
    orbit_tangents,
    rational_rotation,
    random_rotation,
    tensor_from_coefficients,
    transform_coefficients,
    transform_rows,
)
from optinv.algebra.signature import Signature
from budget import scaled

L_MAX_EXACT = 8


def rotate_slots(R, T, l):
    """Reference ``(R^{(x)l} T)``: contract R's second index with each slot in turn, written out."""
    out = T
    for slot in range(l):
        moved = np.moveaxis(out, slot, 0)  # slot first
        flat = moved.reshape(3, -1)
        rotated = np.array([[sum(R[i][k] * flat[k][c] for k in range(3)) for c in range(flat.shape[1])] for i in range(3)],
                           dtype=object)
        out = np.moveaxis(rotated.reshape(moved.shape), 0, slot)
    return out


# -- the coefficient maps themselves ------------------------------------------------------


@pytest.mark.parametrize("l", range(L_MAX_EXACT + 1))
def test_free_indices_follow_the_hippynn_convention(l):
    free = free_indices(l)
    assert len(free) == 2 * l + 1
    assert free == sorted(free)
    assert all(tuple(sorted(t)) == t for t in free)
    expected = [t for t in itertools.combinations_with_replacement(range(3), l) if l < 2 or t[-2:] != (2, 2)]
    assert free == expected
    if l == 2:
        assert free == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]


@pytest.mark.parametrize("l", range(L_MAX_EXACT + 1))
def test_coefficient_map_is_integer_symmetric_traceless_and_reads_back(l):
    C = coefficient_map(l)
    assert C.shape == (3,) * l + (2 * l + 1,)
    assert C.dtype.kind == "i"
    if l <= 3:  # BACKGROUND: entries 0, +1, -1 (higher ranks need larger integers)
        assert set(np.unique(C)) <= {-1, 0, 1}
    # symmetric: adjacent transpositions generate every permutation of the slots
    for a in range(l - 1):
        assert np.array_equal(C, np.swapaxes(C, a, a + 1))
    # traceless in every pair of slots
    for a, b in itertools.combinations(range(l), 2):
        assert not np.trace(C, axis1=a, axis2=b).any()
    # the free entries are the coefficients themselves
    for k, idx in enumerate(free_indices(l)):
        row = C[idx]
        assert row[k] == 1 and np.count_nonzero(row) == 1
    c = np.arange(1, 2 * l + 2)
    assert np.array_equal(coefficients_from_tensor(tensor_from_coefficients(c, l), l), c)


def _laplacian(poly: dict) -> dict:
    """Laplacian of a polynomial given as {exponent tuple: coefficient}."""
    out: dict = {}
    for exps, coef in poly.items():
        for i, e in enumerate(exps):
            if e >= 2:
                lower = tuple(v - 2 if j == i else v for j, v in enumerate(exps))
                out[lower] = out.get(lower, 0) + coef * e * (e - 1)
    return {m: c for m, c in out.items() if c}


def _exponents(l: int) -> list[tuple[int, int, int]]:
    return [tuple(m.count(i) for i in range(3)) for m in itertools.combinations_with_replacement(range(3), l)]


@pytest.mark.parametrize("l", range(L_MAX_EXACT + 1))
def test_image_is_the_whole_space_of_harmonic_polynomials(l):
    """Symmetric tensors <-> homogeneous polynomials; traceless <-> harmonic.

    ``p_T(x) = T_{i1..il} x_i1 ... x_il``.  The 2l+1 polynomials of the basis
    tensors must be harmonic (Laplacian 0) and independent, and the space of
    harmonic polynomials of degree l, computed here as the kernel of the
    Laplacian, must have dimension exactly 2l+1: so the image is all of it.
    """
    C = coefficient_map(l)
    monos = _exponents(l)
    polys = []
    for k in range(2 * l + 1):
        poly: dict = {}
        for idx in itertools.product(range(3), repeat=l):
            if C[idx + (k,)]:
                m = tuple(idx.count(i) for i in range(3))
                poly[m] = poly.get(m, 0) + int(C[idx + (k,)])
        polys.append(poly)
        assert _laplacian(poly) == {}
    coeffs = sympy.Matrix([[p.get(m, 0) for m in monos] for p in polys])
    assert coeffs.rank() == 2 * l + 1
    if l >= 2:
        targets = _exponents(l - 2)
        lap = sympy.Matrix([[_laplacian({m: 1}).get(t, 0) for m in monos] for t in targets])
        harmonic_dim = len(monos) - lap.rank()
    else:
        harmonic_dim = len(monos)
    assert harmonic_dim == 2 * l + 1 == comb(l + 2, 2) - comb(l, 2)


# -- the action of rotations, exactly ----------------------------------------------------------

small_quaternions = st.tuples(*(st.integers(-3, 3),) * 4).filter(lambda q: any(q))


@pytest.mark.parametrize("l", range(L_MAX_EXACT + 1))
@settings(max_examples=scaled(2))
@given(q=small_quaternions, data=st.data())
def test_rotations_commute_with_the_map_exactly(l, q, data):
    """C(transform(c, R)) == R^{(x)l} C(c) in rational arithmetic, for l up to 8."""
    R = rational_rotation(*q)
    assert np.all(R.dot(R.T) == np.eye(3, dtype=int))
    c = np.array(data.draw(st.lists(st.integers(-5, 5), min_size=2 * l + 1, max_size=2 * l + 1)), dtype=object)
    lhs = tensor_from_coefficients(transform_coefficients(c, l, R), l)
    rhs = rotate_slots(R, tensor_from_coefficients(c, l), l)
    assert lhs.shape == rhs.shape
    assert all(isinstance(v, (int, Fraction)) for v in np.ravel(lhs))
    assert np.all(lhs == rhs)


@settings(max_examples=scaled(10))
@given(l=st.integers(0, 5), q1=small_quaternions, q2=small_quaternions, data=st.data())
def test_action_is_a_group_homomorphism_exactly(l, q1, q2, data):
    R1, R2 = rational_rotation(*q1), rational_rotation(*q2)
    c = np.array(data.draw(st.lists(st.integers(-5, 5), min_size=2 * l + 1, max_size=2 * l + 1)), dtype=object)
    two_steps = transform_coefficients(transform_coefficients(c, l, R1), l, R2)
    assert np.all(two_steps == transform_coefficients(c, l, R2.dot(R1)))
    assert np.all(transform_coefficients(transform_coefficients(c, l, R1), l, R1.T) == c)


@settings(max_examples=scaled(25))
@given(sig=ot.signatures(max_tensors=4, max_rank=6, axial=True), g=ot.orthogonal(), data=st.data())
def test_float_action_preserves_tensor_norms_and_parity(sig, g, data):
    """Frobenius norms of the Cartesian tensors are O(3) invariant; g and -g differ by the parity."""
    x = data.draw(ot.rows(sig, n=3, kinds=("generic",)))
    y = transform_rows(x, sig, g)
    for spec, sl in zip(sig.tensors, sig.slices().values()):
        n0 = np.linalg.norm(tensor_from_coefficients(x[:, sl], spec.rank).reshape(3, -1), axis=1)
        n1 = np.linalg.norm(tensor_from_coefficients(y[:, sl], spec.rank).reshape(3, -1), axis=1)
        np.testing.assert_allclose(n1, n0, rtol=1e-12, atol=1e-12 * (1 + n0.max()))
    flipped = transform_rows(x, sig, -g)
    for spec, sl in zip(sig.tensors, sig.slices().values()):
        np.testing.assert_allclose(flipped[:, sl], spec.parity * y[:, sl], rtol=1e-12, atol=1e-12 * (1 + abs(y).max()))


def test_inversion_signs_polar_and_axial():
    sig = Signature.parse("s:0,v:1,q:2,t:3,w:1:axial,p:0:axial")
    x = np.arange(1.0, sig.dim + 1).reshape(1, -1)
    y = transform_rows(x, sig, -np.eye(3))
    expected = {"s": 1, "v": -1, "q": 1, "t": -1, "w": 1, "p": -1}
    for name, sl in sig.slices().items():
        assert np.array_equal(y[:, sl], expected[name] * x[:, sl])


def test_integer_rows_are_promoted_not_truncated():
    sig = Signature.parse("v:1")
    g = random_rotation(np.random.default_rng(1))
    y = transform_rows(np.array([[1, 2, 3]]), sig, g)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y[0], g @ [1.0, 2.0, 3.0])
    exact = transform_rows(np.array([[1, 2, 3]]), sig, rational_rotation(1, 1, 0, 0))
    assert list(exact[0]) == [1, -3, 2]


def _axis_rotation(a: int, t: float) -> np.ndarray:
    L = GENERATORS[a].astype(float)
    return np.eye(3) + np.sin(t) * L + (1 - np.cos(t)) * (L @ L)  # Rodrigues: exp(t L)


@settings(max_examples=scaled(15))
@given(sig=ot.signatures(max_tensors=4, max_rank=5), data=st.data())
def test_orbit_tangents_are_derivatives_of_finite_rotations(sig, data):
    x_int = np.array(data.draw(st.lists(st.integers(-4, 4), min_size=sig.dim, max_size=sig.dim)), dtype=np.int64)
    tangents = orbit_tangents(x_int, sig)
    assert tangents.shape == (3, sig.dim) and tangents.dtype.kind == "i"
    x = x_int.astype(float).reshape(1, -1)
    h = 1e-4
    for a in range(3):
        assert np.allclose(_axis_rotation(a, 0.3) @ _axis_rotation(a, 0.3).T, np.eye(3))
        fd = (transform_rows(x, sig, _axis_rotation(a, h)) - transform_rows(x, sig, _axis_rotation(a, -h)))[0] / (2 * h)
        np.testing.assert_allclose(fd, tangents[a], rtol=1e-6, atol=1e-5 * (1 + np.abs(x).max() * 10))
