"""Exact maps between coefficients and Cartesian tensors, and rotations of coefficients.

Convention ``hippynn``: the free coefficients of a symmetric traceless rank-``l``
tensor are its entries at the sorted index tuples that do not end in ``(2, 2)``,
in lexicographic order (all three for ``l = 1``).  The remaining entries follow
from symmetry and from tracelessness, ``T[..., 2, 2] = -T[..., 0, 0] - T[..., 1, 1]``.
The map coefficients -> tensor has integer entries, so everything here is exact.

>>> coefficient_map(2).shape
(3, 3, 5)
>>> free_indices(2)
[(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from optinv.algebra.signature import Signature


@lru_cache(maxsize=None)
def free_indices(l: int) -> list[tuple[int, ...]]:
    """Sorted index tuples that carry the 2l+1 free coefficients, in order."""
    sorted_tuples = list(itertools.combinations_with_replacement(range(3), l))
    if l < 2:
        return sorted_tuples
    return [t for t in sorted_tuples if t[-2:] != (2, 2)]


@lru_cache(maxsize=None)
def _symmetric_expansion(l: int) -> dict[tuple[int, ...], dict[int, int]]:
    """For each sorted tuple, its value as an integer combination of free coefficients."""
    free = {t: k for k, t in enumerate(free_indices(l))}
    expansion: dict[tuple[int, ...], dict[int, int]] = {t: {k: 1} for t, k in free.items()}
    # Lexicographic order guarantees that x[:-2]+(k,k), re-sorted, is expanded before x.
    for t in itertools.combinations_with_replacement(range(3), l):
        if t in expansion:
            continue
        combo: dict[int, int] = {}
        for k in (0, 1):
            for c, v in expansion[tuple(sorted(t[:-2] + (k, k)))].items():
                combo[c] = combo.get(c, 0) - v
        expansion[t] = {c: v for c, v in combo.items() if v}
    return expansion


@lru_cache(maxsize=None)
def _coefficient_map_cached(l: int) -> np.ndarray:
    expansion = _symmetric_expansion(l)
    cmap = np.zeros((3,) * l + (2 * l + 1,), dtype=np.int64)
    for idx in itertools.product(range(3), repeat=l):
        for c, v in expansion[tuple(sorted(idx))].items():
            cmap[idx + (c,)] = v
    cmap.setflags(write=False)
    return cmap


def coefficient_map(l: int) -> np.ndarray:
    """Integer array ``C`` of shape ``(3,)*l + (2l+1,)`` with ``T = C @ c``."""
    return _coefficient_map_cached(int(l))


def tensor_from_coefficients(c: np.ndarray, l: int) -> np.ndarray:
    """Cartesian tensors ``(..., 3, ..., 3)`` from coefficients ``(..., 2l+1)``; works for object dtype."""
    c = np.asarray(c)
    cmap = coefficient_map(l)
    if c.dtype == object:
        cmap = cmap.astype(object)
    return np.tensordot(c, np.moveaxis(cmap, -1, 0), axes=([-1], [0]))


def coefficients_from_tensor(T: np.ndarray, l: int) -> np.ndarray:
    """Read the free coefficients of a symmetric traceless tensor ``(..., 3, ..., 3)``.

    This is an exact left inverse of :func:`coefficient_map`: free entries are
    coefficients themselves.
    """
    T = np.asarray(T)
    lead = T.shape[: T.ndim - l]
    out = np.empty(lead + (2 * l + 1,), dtype=T.dtype)
    for k, idx in enumerate(free_indices(l)):
        out[..., k] = T[(Ellipsis,) + idx]
    return out


def apply_to_slots(M: np.ndarray, T: np.ndarray, l: int) -> np.ndarray:
    """``M^{(x)l} T``: apply a 3x3 matrix to every index of rank-``l`` tensors ``(..., 3^l)``."""
    out = T
    nd = T.ndim
    for slot in range(l):
        axis = nd - l + slot
        out = np.moveaxis(np.tensordot(out, M, axes=([axis], [1])), -1, axis)
    return out


def transform_coefficients(c: np.ndarray, l: int, g: np.ndarray, parity: int | None = None) -> np.ndarray:
    """Coefficients of the tensor transformed by an orthogonal ``g`` (rotation or improper).

    ``parity`` is the tensor's sign under inversion (default ``(-1)**l``); an
    improper ``g`` multiplies by ``parity * (-1)**l`` on top of ``g^{(x)l}``.
    Works with object arrays of Fractions for exact checks.
    """
    T = tensor_from_coefficients(c, l)
    out = coefficients_from_tensor(apply_to_slots(np.asarray(g), T, l), l)
    if parity is not None and parity != (-1) ** l:
        det = np.linalg.det(np.asarray(g, dtype=float))
        if det < 0:
            out = -out
    return out


def transform_rows(x: np.ndarray, signature: Signature, g: np.ndarray) -> np.ndarray:
    """Apply an orthogonal matrix ``g`` to every tensor in rows ``x`` of shape ``(N, D)``."""
    x = np.asarray(x)
    # integer rows and a float (or rational) g: promote rather than truncate
    dtype = np.result_type(x, np.asarray(g)) if x.dtype.kind in "biu" else x.dtype
    out = np.empty(x.shape, dtype=dtype)
    for spec, sl in zip(signature.tensors, signature.slices().values()):
        out[..., sl] = transform_coefficients(x[..., sl], spec.rank, g, spec.parity)
    return out


# so(3) generators: (L_a)_{ij} = -eps_{aij}
LEVI_CIVITA = np.zeros((3, 3, 3), dtype=np.int64)
for _i, _j, _k in itertools.permutations(range(3)):
    LEVI_CIVITA[_i, _j, _k] = int(np.sign(np.linalg.det(np.eye(3)[[_i, _j, _k]])))
GENERATORS = -LEVI_CIVITA  # GENERATORS[a] is the 3x3 generator of rotations about axis a


def orbit_tangents(x: np.ndarray, signature: Signature) -> np.ndarray:
    """The three tangent vectors ``(3, D)`` of the rotation orbit through row ``x``.

    Integer input gives integer output, so the orbit dimension can be computed
    exactly (see :mod:`optinv.algebra.rank`).
    """
    x = np.asarray(x)
    rows = []
    for a in range(3):
        J = GENERATORS[a]
        parts = []
        for spec, sl in zip(signature.tensors, signature.slices().values()):
            l = spec.rank
            T = tensor_from_coefficients(x[sl], l)
            dT = np.zeros_like(T)
            for slot in range(l):
                dT = dT + np.moveaxis(np.tensordot(T, J, axes=([slot], [1])), -1, slot)
            parts.append(coefficients_from_tensor(dT, l) if l else np.zeros(1, dtype=x.dtype))
        rows.append(np.concatenate(parts))
    return np.array(rows)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A Haar-random rotation matrix (det +1)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return quaternion_matrix(q)


def quaternion_matrix(q) -> np.ndarray:
    """Rotation matrix (float) of a unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    M = [
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
    ]
    return np.array(M, dtype=float)


def rational_rotation(a: int, b: int, c: int, d: int) -> np.ndarray:
    """An exact rational rotation (object array of Fractions) from an integer quaternion."""
    from fractions import Fraction

    n = a * a + b * b + c * c + d * d
    if n == 0:
        raise ValueError("quaternion must be nonzero")
    w, x, y, z = (Fraction(v) for v in (a, b, c, d))
    M = [
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
    ]
    return np.array([[v / n for v in row] for row in M], dtype=object)
