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

from optinv.algebra.group import O3, levi_civita
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


def tensor_from_coefficients(c: np.ndarray, l: int, absolute: bool = False) -> np.ndarray:
    """Cartesian tensors ``(..., 3, ..., 3)`` from coefficients ``(..., 2l+1)``: the one lift.

    The result keeps the dtype of ``c`` (float32 stays float32; int64 residues,
    object arrays of Fractions or sympy symbols work too).  ``absolute``: lift
    with ``|C|`` instead of ``C`` (bounds on the terms, for tolerances).
    """
    c = np.asarray(c)
    cmap = coefficient_map(l)
    if absolute:
        cmap = np.abs(cmap)
    if c.dtype != cmap.dtype:
        cmap = cmap.astype(c.dtype)
    return np.tensordot(c, np.moveaxis(cmap, -1, 0), axes=([-1], [0]))


def tensors_of_rows(x: np.ndarray, signature: Signature, absolute: bool = False) -> dict[str, np.ndarray]:
    """Every input tensor of rows ``x`` ``(..., D)``, by name: ``(..., 3, ..., 3)`` each (see
    :func:`tensor_from_coefficients`).

    >>> from optinv.algebra.signature import Signature
    >>> t = tensors_of_rows(np.array([[2.0, 1.0, 0.0, 0.0]]), Signature.from_l_max(1))
    >>> t["s"].tolist(), t["v"].tolist()
    ([2.0], [[1.0, 0.0, 0.0]])
    """
    x = np.asarray(x)
    return {spec.name: tensor_from_coefficients(x[..., sl], spec.rank, absolute)
            for spec, sl in zip(signature.tensors, signature.slices().values())}


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


LEVI_CIVITA = levi_civita(3)
GENERATORS = O3.generators  # GENERATORS[a] is the 3x3 generator of rotations about axis a: -eps[a]


def orbit_tangents(x: np.ndarray, signature: Signature) -> np.ndarray:
    """The tangent vectors ``(orbit_dim, D)`` of the rotation orbit through row ``x`` (three in 3D).

    Integer input gives integer output, so the orbit dimension can be computed
    exactly (see :mod:`optinv.algebra.rank`).
    """
    x = np.asarray(x)
    rows = []
    for J in signature.group.generators:
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
