"""Exact dimensions of spaces of invariant polynomials, from characters (Molien-Weyl).

The input tensors of a :class:`~optinv.algebra.signature.Signature` span a
representation ``V`` of O(3): a rank-``l`` tensor carries the irreducible
representation ``rho_l`` of SO(3) (dimension ``2l+1``), and the inversion
``-I`` multiplies it by its parity (``(-1)**l`` for ordinary tensors).  The
number of linearly independent invariant polynomials of degree ``nu`` in the
``D`` coefficients is the coefficient of ``t**nu`` in the Molien series

    H(t) = integral over G of  1 / det(1 - t g)  dg.

For SO(3) the integrand only depends on the rotation angle ``theta``.  With
``z = exp(i theta)`` a rotation has the eigenvalues ``z**m`` (``m = -l..l``) on
``rho_l``, and Weyl's integration formula turns the Haar integral of a class
function ``f`` into a constant term:

    integral f dg = (1/2pi) int_0^2pi f(theta) (1 - cos theta) dtheta
                  = CT_z[ f(z) (1 - (z + 1/z)/2) ] = f_0 - f_{-1},

the last step because ``f`` is symmetric under ``z -> 1/z``.  So everything is
integer arithmetic on Laurent polynomials in ``z``, one truncated power series in
``t`` per polynomial degree:

    1 / det(1 - t g) = prod over tensors, over m = -l..l of 1 / (1 - t z**m).

O(3) is SO(3) x {I, -I}: the improper element ``-R`` acts on a tensor of parity
``p`` as ``p * rho_l(R)``, so its term is the same product with ``t`` replaced by
``p t`` per tensor, and the O(3) dimension is the average of the proper and the
improper integral.  Nothing is floating point: the results are exact integers.

>>> from optinv.algebra.signature import Signature
>>> invariant_dimensions(Signature.from_l_max(1), 6)   # s and |v|^2
[1, 1, 2, 2, 3, 3, 4]
>>> invariant_dimensions(Signature.parse("q:2"), 6)    # tr q^2, tr q^3
[1, 0, 1, 1, 1, 1, 2]
>>> ace_linear_counts(n_rad=4, l_max=3, nu_max=4, group="O3")
[1, 4, 40, 304, 2732]
"""

from __future__ import annotations

from math import comb

import numpy as np

from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature, normalise_group

_INT64_SAFE = 1 << 62


def _check_nu_max(nu_max) -> int:
    if not isinstance(nu_max, int) or isinstance(nu_max, bool) or nu_max < 0:
        raise OptinvError(f"nu_max: expected an integer >= 0, got {nu_max!r}")
    return nu_max


def _series(signature: Signature, nu_max: int, improper: bool) -> np.ndarray:
    """Coefficients ``P[k, W + e]`` of ``t**k z**e`` in ``prod 1/(1 - s t z**m)``, ``k <= nu_max``.

    ``s = 1`` for proper rotations; for the improper component ``s`` is each
    tensor's parity.  ``W = nu_max * max rank`` bounds every exponent of ``z``.
    """
    l_top = max(t.rank for t in signature.tensors)
    W = nu_max * l_top
    # Every coefficient is at most the number of monomials of degree k in D variables.
    safe = comb(signature.dim + nu_max, nu_max) < _INT64_SAFE
    P = np.zeros((nu_max + 1, 2 * W + 1), dtype=np.int64 if safe else object)
    P[0, W] = 1
    for spec in signature.tensors:
        s = spec.parity if improper else 1
        for m in range(-spec.rank, spec.rank + 1):
            # Q = P / (1 - s t z^m):  Q_k = P_k + s z^m Q_{k-1}, k ascending.
            for k in range(1, nu_max + 1):
                prev = P[k - 1]
                if m > 0:
                    shifted = prev[:-m]
                    target = P[k, m:]
                elif m < 0:
                    shifted = prev[-m:]
                    target = P[k, :m]
                else:
                    shifted = prev
                    target = P[k]
                if s == 1:
                    target += shifted
                else:
                    target -= shifted
    return P


def _weyl_integral(P: np.ndarray, nu_max: int, W: int) -> list[int]:
    """Haar integral over SO(3) of each Laurent polynomial row: constant term of ``(1 - z) f``."""
    return [int(P[k, W]) - int(P[k, W - 1]) if W > 0 else int(P[k, W]) for k in range(nu_max + 1)]


def invariant_dimensions(signature: Signature, nu_max: int, group: str | None = None) -> list[int]:
    """Dimension of the invariant polynomials of each degree ``0..nu_max`` (index = degree).

    ``group`` defaults to the signature's group.  For ``"SO3"`` the count
    includes the pseudoscalars (odd under inversion); for ``"O3"`` only the
    polynomials invariant under rotations and the inversion, with each tensor's
    parity as the signature gives it (axial tensors allowed).

    >>> from optinv.algebra.signature import Signature
    >>> invariant_dimensions(Signature.parse("a:1,b:1,c:1"), 3, "O3")
    [1, 0, 6, 0]
    >>> invariant_dimensions(Signature.parse("a:1,b:1,c:1"), 3, "SO3")   # + a.(b x c)
    [1, 0, 6, 1]
    """
    if not isinstance(signature, Signature):
        raise OptinvError(f"signature: expected a Signature, got {type(signature).__name__}")
    nu_max = _check_nu_max(nu_max)
    group = normalise_group(signature.group if group is None else group)
    W = nu_max * max(t.rank for t in signature.tensors)
    proper = _weyl_integral(_series(signature, nu_max, improper=False), nu_max, W)
    if not group.improper:  # rotations only: the pseudoscalars count too
        return proper
    improper = _weyl_integral(_series(signature, nu_max, improper=True), nu_max, W)
    out = []
    for k, (a, b) in enumerate(zip(proper, improper)):
        if (a + b) % 2:
            raise AssertionError(f"Molien average not an integer at degree {k}: {a} + {b}")  # pragma: no cover
        out.append((a + b) // 2)
    return out


def ace_signature(n_rad: int, l_max: int, group: str = "O3") -> Signature:
    """The ACE atomic base tensors: ``n_rad`` channels of each rank ``0..l_max``.

    >>> ace_signature(2, 1).names
    ['s0', 's1', 'v0', 'v1']
    """
    for name, value, low in (("n_rad", n_rad, 1), ("l_max", l_max, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise OptinvError(f"{name}: expected an integer >= {low}, got {value!r}")
    return Signature.channels({l: n_rad for l in range(l_max + 1)}, normalise_group(group))


def ace_linear_counts(n_rad: int, l_max: int, nu_max: int, group: str = "O3") -> list[int]:
    """Size of the linear ACE basis of each body order ``nu = 0..nu_max`` (index = degree).

    The ACE basis functions of order ``nu`` span the invariant polynomials of
    degree ``nu`` in the base tensors ``A_{n,l}`` (``n = 1..n_rad``,
    ``l = 0..l_max``), so their number is the Molien-Weyl dimension.

    >>> ace_linear_counts(1, 1, 4)         # one scalar and one vector
    [1, 1, 2, 2, 3]
    >>> ace_linear_counts(3, 0, 3)         # three scalars: all monomials
    [1, 3, 6, 10]
    """
    return invariant_dimensions(ace_signature(n_rad, l_max, group), nu_max)


__all__ = ["invariant_dimensions", "ace_linear_counts", "ace_signature"]
