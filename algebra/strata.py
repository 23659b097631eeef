"""Degenerate strata of the input space: where symmetric environments live.

A basis that is complete at a generic point can lose rank on special inputs:
tensors that vanish (a tetrahedral carbon has ``v = q = 0``), a vector along an
eigenvector of a rank-2 tensor, a uniaxial rank-2 tensor, or the tensors of a
configuration with point-group symmetry.  Each such family is a *stratum*
``S = G . L``: the rotations of a linear *slice* ``L`` of coefficient space
(the tensors that survive, or the subspace fixed by a symmetry group ``H``).

At a point ``x`` of ``L`` the tangent space of ``S`` is ``L + so(3) x``, so

* ``dim S = rank [L ; so(3) x]``, the orbit dimension on ``S`` is
  ``rank so(3) x`` (smaller than 3 where a stabiliser is continuous: a lone
  vector, a uniaxial rank-2 tensor), and the most any set of invariants can
  capture on ``S`` is ``bound = dim S - orbit dim``;
* invariants are constant on orbits, so their Jacobian kills ``so(3) x``: the
  rank of a set on ``S`` is the rank of ``J(x) @ L.T``.

Slices have integer bases, so points ``x = c @ L`` with random ``c`` mod ``p``
are exact, and every rank here is an exact rank modulo :data:`PRIME` (a
certified lower bound of the rank over the rationals, equal to the generic rank
on ``S`` with probability about ``1 - degree/p``).  User strata are fixed exact
points (rows from a file, read as exact rationals), with the whole space as
tangent.

>>> from optinv.algebra.signature import Signature
>>> sig = Signature.from_l_max(3)
>>> only_t = stratum_by_name(sig, "only t")
>>> geometry(only_t, sig).bound        # s, and 7 octupole coefficients minus a 3-dimensional orbit
5
>>> td = stratum_by_name(sig, "Td")
>>> geometry(td, sig).dim, geometry(td, sig).bound    # s and the xyz octupole, rotated
(5, 2)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy as sp

from collections.abc import Sequence

from optinv.algebra.basis import StratumRank
from optinv.algebra.candidates import candidates
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.cartesian import GENERATORS, coefficient_map, free_indices, orbit_tangents, transform_coefficients
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import exact_values_and_gradients
from optinv.algebra.modular import PRIME, exact_tensors, matmul_mod, modular_rank
from optinv.algebra.modular import modular_rank
from optinv.algebra.signature import Signature

KINDS = ("generic", "vanishing", "alignment", "point-group", "user")
# beyond this many factors a stratum report (which enumerates every candidate) is made only on request
DEFAULT_STRATA_N_MAX = 5
MAX_USER_ROWS = 200  # each row is its own stratum: keep tables and certificates readable


@dataclass(frozen=True, eq=False)
class Stratum:
    """A family of degenerate inputs, in one of three forms.

    * ``slice_basis``: an integer matrix ``(k, D)`` whose rows span a linear
      slice ``L``; the stratum is ``G . L`` (tensors vanishing, alignments);
    * ``family``: the neighbour sums of a symmetric configuration
      (:class:`ConfigurationFamily`), with per-tensor weights and the
      displacements that keep its symmetry;
    * ``point``: one fixed exact point (a tuple of Fractions, user rows) with
      the whole space as tangent.
    """

    name: str
    kind: str
    description: str
    slice_basis: np.ndarray | None = None
    point: tuple[Fraction, ...] | None = None
    family: "ConfigurationFamily | None" = None

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description}


@dataclass(frozen=True)
class StratumGeometry:
    """A stratum at one exact point: its dimension, orbit dimension and bound."""

    dim: int
    orbit_dim: int

    @property
    def bound(self) -> int:
        return self.dim - self.orbit_dim


# -- exact points and restrictions -------------------------------------------------------


def _fraction_mod(value: Fraction, p: int) -> int:
    if value.denominator % p == 0:
        raise OptinvError(f"point coordinate {value}: its denominator is divisible by the prime {p}")
    return value.numerator % p * pow(value.denominator % p, p - 2, p) % p


def point_and_tangent(stratum: Stratum, signature: Signature, rng: np.random.Generator,
                      p: int = PRIME) -> tuple[np.ndarray, np.ndarray]:
    """An exact point of the stratum and a spanning set ``(k, D)`` of its tangent space there, mod ``p``.

    Orbit directions may be missing from the tangent rows: invariants are
    blind to them, and :func:`geometry` adds them.
    """
    if stratum.point is not None:
        x = np.array([_fraction_mod(v, p) for v in stratum.point], dtype=np.int64)
        return x, np.eye(signature.dim, dtype=np.int64)
    if stratum.family is not None:
        return stratum.family.point_and_tangent(rng.integers(1, p, size=len(signature.tensors)), p)
    coeffs = rng.integers(1, p, size=stratum.slice_basis.shape[0], dtype=np.int64)
    x = np.zeros(signature.dim, dtype=np.int64)
    for c, row in zip(coeffs, stratum.slice_basis % p):  # term by term: residues times residues fit int64
        x = (x + c * row) % p
    return x, stratum.slice_basis % p


def geometry(stratum: Stratum, signature: Signature, seed: int = 0, p: int = PRIME,
             at: tuple[np.ndarray, np.ndarray] | None = None) -> StratumGeometry:
    """Dimension and orbit dimension of the stratum at a random exact point (or at ``at = (x, tangent)``)."""
    x, tangent = point_and_tangent(stratum, signature, np.random.default_rng(seed), p) if at is None else at
    orbit = orbit_tangents(np.asarray(x, dtype=np.int64), signature) % p
    orbit_dim = modular_rank(orbit, p)
    dim = modular_rank(np.vstack([tangent % p, orbit]), p)
    return StratumGeometry(dim, orbit_dim)


def float_point_and_tangent(stratum: Stratum, sig: Signature, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A float point of the stratum and its tangent rows (orbit directions aside), for float rank checks.

    The counterpart of :func:`point_and_tangent` for kernels that run in
    floating point (``optinv verify`` checks a module's ranks on strata with it).
    """
    if stratum.point is not None:
        return np.array([float(v) for v in stratum.point]), np.eye(sig.dim)
    if stratum.family is not None:
        fam = stratum.family
        w = rng.uniform(0.5, 2.0, size=len(sig.tensors))
        x = np.array([float(v) for v in fam.row(list(map(float, w)))])
        rows, offsets = [], sig.offsets()
        for t, b in enumerate(fam.base):
            r = np.zeros(sig.dim)
            r[offsets[t] : offsets[t] + len(b)] = [float(v) for v in b]
            rows.append(r)
        for k in range(len(fam.moves[0])):
            r = np.zeros(sig.dim)
            for t in range(len(sig.tensors)):
                mv = fam.moves[t][k]
                r[offsets[t] : offsets[t] + len(mv)] = [w[t] * float(v) for v in mv]
            rows.append(r)
        return x, np.array(rows)
    basis = stratum.slice_basis.astype(float)
    return rng.normal(size=basis.shape[0]) @ basis, basis


# -- the catalogue -----------------------------------------------------------------------------


def _coordinate_rows(signature: Signature, names) -> np.ndarray:
    rows = []
    for name, sl in signature.slices().items():
        if name in names:
            for j in range(sl.start, sl.stop):
                row = np.zeros(signature.dim, dtype=np.int64)
                row[j] = 1
                rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, signature.dim)


def vanishing_strata(signature: Signature) -> list[Stratum]:
    """Some tensors vanish, the rest are generic.

    Scalars never vanish here (they are invariants themselves and change no
    rank on any stratum).  With at most five non-scalar tensors every proper
    nonempty subset survives; with more, each tensor alone and each tensor
    removed (the list grows as ``2**n`` otherwise).
    """
    scalars = [t.name for t in signature.tensors if t.rank == 0]
    others = [t.name for t in signature.tensors if t.rank > 0]
    if len(others) < 2:
        return []
    if len(others) <= 5:
        subsets = [set(c) for r in range(1, len(others)) for c in itertools.combinations(others, r)]
    else:
        subsets = [{n} for n in others] + [set(others) - {n} for n in others]
    out = []
    for keep in subsets:
        gone = [n for n in others if n not in keep]
        kept = [n for n in others if n in keep]
        name = ("only " + ", ".join(kept)) if len(kept) <= len(gone) else (", ".join(gone) + " = 0")
        out.append(Stratum(name, "vanishing", f"{', '.join(gone)} vanish; {', '.join(kept + scalars)} generic",
                           _coordinate_rows(signature, set(keep) | set(scalars))))
    return out


def _action_matrix(spec, g) -> sp.Matrix:
    """Exact matrix of an orthogonal ``g`` (object array of Fractions) on one tensor's coefficients."""
    n = spec.size
    cols = []
    for j in range(n):
        e = np.array([Fraction(int(i == j)) for i in range(n)], dtype=object)
        cols.append(list(transform_coefficients(e, spec.rank, g, spec.parity)))
    return sp.Matrix(n, n, lambda i, j: sp.Rational(cols[j][i].numerator, cols[j][i].denominator))


def _generator_matrix(spec, axis) -> sp.Matrix:
    """Exact matrix of the infinitesimal rotation about ``axis`` on one tensor's coefficients."""
    n = spec.size
    J = sum(int(a) * GENERATORS[k] for k, a in enumerate(axis))
    cols = []
    for j in range(n):
        e = np.zeros(n, dtype=np.int64)
        e[j] = 1
        T = np.tensordot(coefficient_map(spec.rank), e, axes=([-1], [0]))
        dT = np.zeros_like(T)
        for slot in range(spec.rank):
            dT = dT + np.moveaxis(np.tensordot(T, J, axes=([slot], [1])), -1, slot)
        cols.append([int(dT[idx]) for idx in free_indices(spec.rank)] if spec.rank else [0])
    return sp.Matrix(n, n, lambda i, j: cols[j][i])


def fixed_slice(signature: Signature, names, finite=(), continuous=()) -> np.ndarray:
    """Integer basis of the coefficients of tensors ``names`` fixed by a group, other tensors free.

    ``finite`` are orthogonal 3x3 matrices (object arrays of Fractions),
    ``continuous`` axes of one-parameter rotation groups (integer 3-vectors).
    """
    rows = []
    for spec, sl in zip(signature.tensors, signature.slices().values()):
        if spec.name not in names:
            block = np.eye(spec.size, dtype=np.int64)
        else:
            conditions = [(_action_matrix(spec, g) - sp.eye(spec.size)) for g in finite]
            conditions += [_generator_matrix(spec, a) for a in continuous]
            if not conditions:
                block = np.eye(spec.size, dtype=np.int64)
            else:
                null = sp.Matrix.vstack(*conditions).nullspace()
                block = np.array([_integer_vector(v) for v in null], dtype=np.int64).reshape(-1, spec.size)
        for b in block:
            row = np.zeros(signature.dim, dtype=np.int64)
            row[sl] = b
            rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, signature.dim)


def _integer_vector(v: sp.Matrix) -> list[int]:
    den = 1
    for e in v:
        den = int(sp.ilcm(den, sp.Rational(e).q))
    ints = [int(sp.Rational(e) * den) for e in v]
    g = int(np.gcd.reduce([abs(i) for i in ints])) or 1
    return [i // g for i in ints]


def _matrix(rows) -> np.ndarray:
    return np.array([[Fraction(v) for v in row] for row in rows], dtype=object)


# Exact orthogonal matrices used as group generators (axes chosen so entries are rational).
_C4Z = _matrix([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
_C3_111 = _matrix([[0, 0, 1], [1, 0, 0], [0, 1, 0]])  # x -> y -> z -> x
_S4Z = _matrix([[0, 1, 0], [-1, 0, 0], [0, 0, -1]])
_INVERSION = _matrix([[-1, 0, 0], [0, -1, 0], [0, 0, -1]])
_C2X = _matrix([[1, 0, 0], [0, -1, 0], [0, 0, -1]])
_C2Z = _matrix([[-1, 0, 0], [0, -1, 0], [0, 0, 1]])
_SIGMA_XZ = _matrix([[1, 0, 0], [0, -1, 0], [0, 0, 1]])
_SIGMA_XY_SWAP = _matrix([[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # mirror plane x = y (contains (1,1,1))


def _reflection_through(n) -> np.ndarray:
    n = [Fraction(v) for v in n]
    nn = sum(v * v for v in n)
    return np.array([[Fraction(int(i == j)) - 2 * n[i] * n[j] / nn for j in range(3)] for i in range(3)], dtype=object)


def _half_turn_about(a) -> np.ndarray:
    a = [Fraction(v) for v in a]
    aa = sum(v * v for v in a)
    return np.array([[2 * a[i] * a[j] / aa - Fraction(int(i == j)) for j in range(3)] for i in range(3)], dtype=object)


@dataclass(frozen=True)
class Environment:
    """A symmetric neighbour configuration: its point group and neighbour positions (centre at 0)."""

    name: str
    example: str
    finite: tuple
    continuous: tuple
    neighbours: tuple[tuple[int, int, int], ...]


ENVIRONMENTS = (
    Environment("Td", "CH4", (_C3_111, _S4Z), (), ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))),
    Environment("Oh", "SF6", (_C4Z, _C3_111, _INVERSION), (),
                ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))),
    Environment("D3h", "BF3", (_C3_111, _half_turn_about((2, -1, -1)), _reflection_through((1, 1, 1))), (),
                ((2, -1, -1), (-1, 2, -1), (-1, -1, 2))),
    Environment("C3v", "NH3", (_C3_111, _SIGMA_XY_SWAP), (), ((3, 1, 1), (1, 3, 1), (1, 1, 3))),
    Environment("C2v", "H2O", (_C2Z, _SIGMA_XZ), (), ((3, 0, 2), (-3, 0, 2))),
    Environment("D4h", "XeF4", (_C4Z, _C2X, _INVERSION), (), ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))),
    Environment("Cinfv", "HCl", (_SIGMA_XZ,), ((0, 0, 1),), ((0, 0, 1),)),
    Environment("Dinfh", "CO2", (_C2X, _INVERSION), ((0, 0, 1),), ((0, 0, 1), (0, 0, -1))),
)


def _detracer(l: int) -> sp.Matrix:
    """Exact map from a flattened rank-``l`` tensor to the coefficients of its symmetric traceless part.

    The orthogonal projection onto the image of the coefficient map ``C``:
    ``c = (C^T C)^{-1} C^T vec(T)``.
    """
    C = sp.Matrix(coefficient_map(l).reshape(-1, 2 * l + 1).tolist())
    return (C.T * C).inv() * C.T


def _power(r, l: int, direction=None) -> sp.Matrix:
    """``vec(r^{(x)l})``, or its derivative along ``direction``, exactly."""
    r = [sp.Rational(v) for v in r]
    entries = []
    for idx in itertools.product(range(3), repeat=l):
        if direction is None:
            entries.append(sp.prod([r[i] for i in idx]) if l else sp.Integer(1))
        else:
            entries.append(sum((sp.Rational(direction[idx[k]]) * sp.prod([r[i] for m, i in enumerate(idx) if m != k])
                                for k in range(l)), sp.Integer(0)))
    return sp.Matrix(entries)


@dataclass(frozen=True, eq=False)
class ConfigurationFamily:
    """Neighbour sums ``sum_j w_l r_j^{(x)l}`` (traceless part) of a symmetric configuration, exactly.

    The weights ``w_l`` (one per tensor) stand for the radial functions; the
    displacements are those that keep the point group.  ``base[t]`` is the
    tensor ``t``'s coefficients at unit weight, ``moves[t][k]`` their
    derivative along displacement ``k``; both are exact rationals.
    """

    signature: Signature
    base: tuple[tuple[Fraction, ...], ...]
    moves: tuple[tuple[tuple[Fraction, ...], ...], ...]

    @classmethod
    def of(cls, env: "Environment", signature: Signature) -> "ConfigurationFamily":
        displacements = symmetric_displacements(env)
        base, moves = [], []
        for spec in signature.tensors:
            P = _detracer(spec.rank)
            base.append(_fractions(P * sum((_power(r, spec.rank) for r in env.neighbours), sp.zeros(3 ** spec.rank, 1))))
            per_move = []
            for d in displacements:
                total = sp.zeros(3 ** spec.rank, 1)
                for j, r in enumerate(env.neighbours):
                    total += _power(r, spec.rank, d[3 * j : 3 * j + 3])
                per_move.append(_fractions(P * total))
            moves.append(tuple(per_move))
        return cls(signature, tuple(base), tuple(moves))

    def row(self, weights) -> tuple[Fraction, ...]:
        """The exact row at the given weights (one per tensor)."""
        return tuple(Fraction(w) * v for w, b in zip(weights, self.base) for v in b)

    def point_and_tangent(self, weights, p: int = PRIME) -> tuple[np.ndarray, np.ndarray]:
        sig = self.signature
        weights = [int(w) % p for w in weights]
        offsets = sig.offsets()
        x = np.zeros(sig.dim, dtype=np.int64)
        rows = []
        for t, (w, b) in enumerate(zip(weights, self.base)):
            block = np.array([_fraction_mod(v, p) for v in b], dtype=np.int64)
            x[offsets[t] : offsets[t] + len(b)] = w * block % p
            row = np.zeros(sig.dim, dtype=np.int64)  # d/dw_t
            row[offsets[t] : offsets[t] + len(b)] = block
            rows.append(row)
        for k in range(len(self.moves[0]) if self.moves else 0):  # d/d(displacement k), all tensors at once
            row = np.zeros(sig.dim, dtype=np.int64)
            for t, w in enumerate(weights):
                move = self.moves[t][k]
                row[offsets[t] : offsets[t] + len(move)] = [w * _fraction_mod(v, p) % p for v in move]
            rows.append(row)
        return x, np.array(rows, dtype=np.int64).reshape(-1, sig.dim)


def _fractions(m: sp.Matrix) -> tuple[Fraction, ...]:
    return tuple(Fraction(int(sp.Rational(v).p), int(sp.Rational(v).q)) for v in m)


def _permutation_of(g, neighbours) -> list[int]:
    images = [tuple(sum(g[i][k] * r[k] for k in range(3)) for i in range(3)) for r in neighbours]
    exact = [tuple(Fraction(v) for v in r) for r in neighbours]
    try:
        return [exact.index(tuple(Fraction(v) for v in im)) for im in images]
    except ValueError:
        raise OptinvError("environment: a generator does not map the neighbours onto themselves") from None


def symmetric_displacements(env: "Environment") -> list[list[Fraction]]:
    """Exact basis of the neighbour displacements that keep the point group (flattened ``3n`` vectors)."""
    n = len(env.neighbours)
    conditions = []
    for g in env.finite:
        perm = _permutation_of(g, env.neighbours)
        G = sp.Matrix(3, 3, lambda i, j: sp.Rational(g[i][j].numerator, g[i][j].denominator))
        P = sp.zeros(3 * n, 3 * n)
        for j, pj in enumerate(perm):
            P[3 * pj : 3 * pj + 3, 3 * j : 3 * j + 3] = G
        conditions.append(P - sp.eye(3 * n))
    for axis in env.continuous:
        J = sp.Matrix(sum(int(a) * GENERATORS[k] for k, a in enumerate(axis)).tolist())
        conditions.append(sp.diag(*([J] * n)))
    null = sp.Matrix.vstack(*conditions).nullspace() if conditions else [sp.eye(3 * n)[:, k] for k in range(3 * n)]
    return [list(_fractions(v)) for v in null]


def environment_strata(signature: Signature) -> list[Stratum]:
    """Neighbour sums of configurations with point-group symmetry, their own stratum found from its tangent space."""
    return [Stratum(env.name, "point-group",
                    f"neighbour sums of a {env.name}-symmetric environment ({env.example}) with its symmetric "
                    "deformations and radial weights", family=ConfigurationFamily.of(env, signature))
            for env in ENVIRONMENTS]


def neighbour_sum_row(signature: Signature, positions, weights=None) -> tuple[Fraction, ...]:
    """Exact row of ``sum_j w_t r_j^{(x)l}`` projected to symmetric traceless tensors (one weight per tensor)."""
    row: list[Fraction] = []
    for t, spec in enumerate(signature.tensors):
        total = sum((_power(r, spec.rank) for r in positions), sp.zeros(3 ** spec.rank, 1))
        w = 1 if weights is None else weights[t]
        row += [Fraction(w) * v for v in _fractions(_detracer(spec.rank) * total)]
    return tuple(row)


def alignment_strata(signature: Signature) -> list[Stratum]:
    """A vector along an eigenvector of a rank-2 tensor; uniaxial rank-2 tensors, with aligned vectors."""
    vectors = [t.name for t in signature.tensors if t.rank == 1]
    quads = [t.name for t in signature.tensors if t.rank == 2]
    out = []
    for q in quads:
        for v in vectors:
            # a half turn about z fixes v along z and q with z as an eigenvector
            out.append(Stratum(f"{v} ∥ eigvec({q})", "alignment",
                               f"{v} along an eigenvector of {q}; other tensors generic",
                               fixed_slice(signature, {v, q}, finite=(_C2Z,))))
        out.append(Stratum(f"{q} uniaxial", "alignment", f"{q} has two equal eigenvalues; other tensors generic",
                           fixed_slice(signature, {q}, continuous=((0, 0, 1),))))
        for v in vectors:
            out.append(Stratum(f"{q} uniaxial, {v} ∥ axis", "alignment",
                               f"{q} uniaxial and {v} along its axis; other tensors generic",
                               fixed_slice(signature, {q, v}, continuous=((0, 0, 1),))))
    return out


def generic_stratum(signature: Signature) -> Stratum:
    return Stratum("generic", "generic", "a generic point (the whole space)",
                   np.eye(signature.dim, dtype=np.int64))


def _span_key(stratum: Stratum, signature: Signature) -> np.ndarray:
    x, tangent = point_and_tangent(stratum, signature, np.random.default_rng(0))
    return np.vstack([tangent, x[None]])


def _same_span(a: np.ndarray, b: np.ndarray) -> bool:
    ra = modular_rank(a)
    return ra == modular_rank(b) == modular_rank(np.vstack([a, b]))


def catalogue(signature: Signature, kinds=("vanishing", "alignment", "point-group")) -> list[Stratum]:
    """The degenerate strata of a signature (generic first), each listed once.

    Strata that are the same family of points (for example Td and Oh when
    only scalars survive) are merged under one name, ``"Td = Oh"``; so are
    strata that coincide with the generic one (dropped).
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise OptinvError(f"strata kinds: unknown {unknown}; expected some of {', '.join(KINDS[1:4])}")
    found = [generic_stratum(signature)]
    keys = [_span_key(found[0], signature)]
    makers = {"vanishing": vanishing_strata, "alignment": alignment_strata, "point-group": environment_strata}
    for kind in ("vanishing", "alignment", "point-group"):
        if kind not in kinds:
            continue
        for s in makers[kind](signature):
            key = _span_key(s, signature)
            if not key.any():
                continue  # nothing survives: every invariant but the constant vanishes there
            twin = next((i for i, k in enumerate(keys) if _same_span(k, key)), None)
            if twin is None:
                found.append(s)
                keys.append(key)
            elif found[twin].kind != "generic":
                t = found[twin]
                found[twin] = Stratum(f"{t.name} = {s.name}", t.kind, f"{t.description}; also {s.description}",
                                      t.slice_basis, t.point, t.family)
    return found


def stratum_by_name(signature: Signature, name: str) -> Stratum:
    """Look a stratum of :func:`catalogue` up by its name or one of its merged names."""
    for s in catalogue(signature, kinds=KINDS[1:4]):
        if name == s.name or name in s.name.split(" = "):
            return s
    known = ", ".join(s.name for s in catalogue(signature, kinds=KINDS[1:4]))
    raise OptinvError(f"unknown stratum {name!r}; this signature has: {known}")


# -- user strata ---------------------------------------------------------------------------------


def load_user_strata(path: str | Path, signature: Signature) -> list[Stratum]:
    """Rows of a file as fixed exact points, one stratum each.

    Text files: one row per line, numbers separated by spaces or commas, read
    exactly (``0.1`` is 1/10, ``1/3`` is allowed); ``#`` starts a comment.
    ``.npy`` files: float rows, read as the exact binary fractions they hold.
    """
    path = Path(path)
    if not path.is_file():
        raise OptinvError(f"strata file: no such file {str(path)!r}")
    rows: list[tuple[Fraction, ...]] = []
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise OptinvError(f"strata file {str(path)!r}: not a NumPy array file ({exc})") from None
        if arr.dtype.kind not in "fiu":
            raise OptinvError(f"strata file {str(path)!r}: expected real numbers, got dtype {arr.dtype}")
        arr = np.atleast_2d(arr)
        if arr.ndim != 2:
            raise OptinvError(f"strata file {str(path)!r}: expected rows (N, {signature.dim}), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise OptinvError(f"strata file {str(path)!r}: rows must be finite (NaN or inf found)")
        rows = [tuple(Fraction(float(v)) if arr.dtype.kind == "f" else Fraction(int(v)) for v in r) for r in arr]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise OptinvError(f"strata file {str(path)!r}: not a UTF-8 text file") from None
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].replace(",", " ").split()
            if not line:
                continue
            try:
                row = tuple(Fraction(v) for v in line)
            except (ValueError, ZeroDivisionError):
                raise OptinvError(f"strata file {str(path)!r}, line {lineno}: expected numbers, got {raw.strip()!r}") from None
            rows.append(row)
    if not rows:
        raise OptinvError(f"strata file {str(path)!r}: no rows found")
    if len(rows) > MAX_USER_ROWS:
        raise OptinvError(f"strata file {str(path)!r}: {len(rows)} rows; at most {MAX_USER_ROWS} are supported "
                          "(pick representative environments)")
    for k, row in enumerate(rows):
        if len(row) != signature.dim:
            raise OptinvError(f"strata file {str(path)!r}: row {k} has {len(row)} numbers, expected D={signature.dim}")
    return [Stratum(f"{path.name}#{k}", "user", f"row {k} of {path}", point=row) for k, row in enumerate(rows)]


def parse_strata_spec(spec: str | None, signature: Signature) -> list[Stratum]:
    """Strata named on the command line.

    ``spec`` is a comma-separated list of kinds (``vanishing``, ``alignment``,
    ``point-group``, ``all``), environment names (``Td``, ``Oh``, ...) and
    paths of row files; ``None`` means ``all``.  The generic stratum always
    comes first.
    """
    if spec is None or spec.strip() == "":
        return catalogue(signature)
    kinds, names, files = [], [], []
    env_names = {e.name for e in ENVIRONMENTS}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "all":
            kinds += ["vanishing", "alignment", "point-group"]
        elif item in KINDS[1:4]:
            kinds.append(item)
        elif item in env_names:
            names.append(item)
        elif Path(item).is_file():
            files.append(item)
        else:
            raise OptinvError(f"--strata: {item!r} is not a kind ({', '.join(KINDS[1:4])}, all), "
                              f"an environment ({', '.join(sorted(env_names))}) or an existing file")
    out = catalogue(signature, tuple(dict.fromkeys(kinds))) if kinds else [generic_stratum(signature)]
    for name in names:
        s = stratum_by_name(signature, name)
        if all(t.name != s.name for t in out):
            out.append(s)
    for f in files:
        out += load_user_strata(f, signature)
    return out


# -- ranks on strata ------------------------------------------------------------------------------


class StrataRows:
    """Restricted Jacobian rows of graphs on every stratum, exact mod p, at one point per stratum."""

    def __init__(self, signature: Signature, strata: Sequence[Stratum], seed: int = 0, p: int = PRIME):
        if not strata:
            raise OptinvError("strata: expected at least one stratum")
        self.signature = signature
        self.strata = list(strata)
        self.p = p
        rng = np.random.default_rng(seed + 101)
        at = [point_and_tangent(s, signature, rng, p) for s in self.strata]
        self.points = np.array([x for x, _ in at], dtype=np.int64)
        self.restrictions = [tangent for _, tangent in at]
        self.geometries = [geometry(s, signature, p=p, at=pt) for s, pt in zip(self.strata, at)]
        self.tensors = exact_tensors(self.points, signature, p)

    def rows(self, graphs: Sequence[ContractionGraph]) -> list[np.ndarray]:
        """One matrix ``(len(graphs), k_s)`` per stratum: each graph's gradient restricted to the slice."""
        grads = np.zeros((len(self.strata), len(graphs), self.signature.dim), dtype=np.int64)
        for c, g in enumerate(graphs):
            grads[:, c, :] = exact_values_and_gradients(g, self.tensors, self.signature, self.p)[1]
        return [matmul_mod(grads[s], R.T.copy(), self.p) for s, R in enumerate(self.restrictions)]


def stratum_report(graphs: Sequence[ContractionGraph], signature: Signature, n_max: int,
                   strata: Sequence[Stratum] | None = None, seed: int = 0,
                   pool: Sequence[ContractionGraph] | None = None) -> tuple[StratumRank, ...]:
    """Rank of ``graphs`` on every stratum beside the maximum any candidate set with ``n_max`` factors reaches.

    ``pool`` (default: every candidate with at most ``n_max`` factors) is what
    "maximum achievable" is taken over; the given graphs are added to it, so
    the maximum is never below the set's own rank.
    """
    strata = catalogue(signature) if strata is None else strata
    pool = list(candidates(signature, n_max)) if pool is None else list(pool)
    keys = {g.key for g in pool}
    extra = [g for g in graphs if g.key not in keys]
    sr = StrataRows(signature, strata, seed)
    own = sr.rows(list(graphs))
    everything = sr.rows(pool + extra)
    p = sr.p
    out = []
    for s, geo, M_own, M_all in zip(sr.strata, sr.geometries, own, everything):
        out.append(StratumRank(s.name, s.kind, s.description, geo.dim, geo.orbit_dim,
                               modular_rank(M_own, p) if len(graphs) else 0,
                               modular_rank(M_all, p) if len(pool) + len(extra) else 0))
    return tuple(out)
