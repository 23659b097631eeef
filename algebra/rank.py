"""Rank tests: exact (modular) and float, and the orbit bound D - d_orbit.

Exactness argument used throughout: a Jacobian evaluated at an integer point
and reduced modulo a prime ``p`` has rank at most its rank over the rationals,
which is at most the generic rank.  So a modular rank ``r`` *certifies* that the
invariants are functionally independent (a nonzero ``r x r`` minor exists as a
polynomial).  The same argument applied to the orbit tangents makes the computed
bound ``D - d_orbit`` an upper bound on the true one; a set whose certified rank
equals it is complete.

>>> import numpy as np
>>> from optinv.algebra.signature import Signature
>>> orbit_bound(Signature.parse("v:1")).bound
1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optinv.algebra.cartesian import orbit_tangents
from optinv.algebra.modular import PRIME, ModularEchelon, modular_rank, random_integer_point  # noqa: F401
from optinv.algebra.signature import Signature


def float_rank(matrix: np.ndarray, rtol: float | None = None) -> tuple[int, np.ndarray]:
    """Numerical rank by SVD (relative threshold), with the singular values."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.size == 0:
        return 0, np.zeros(0)
    sv = np.linalg.svd(matrix, compute_uv=False)
    if rtol is None:
        rtol = max(matrix.shape) * np.finfo(np.float64).eps * 1e3
    return int(np.sum(sv > rtol * sv[0])) if sv[0] > 0 else 0, sv


@dataclass(frozen=True)
class Bound:
    """The completeness bound ``D - d_orbit`` and how it was obtained."""

    dim: int
    orbit_dim: int
    prime: int
    seed: int

    @property
    def bound(self) -> int:
        return self.dim - self.orbit_dim

    def describe(self) -> str:
        return (
            f"D={self.dim} minus generic orbit dimension {self.orbit_dim} "
            f"(exact rank of the rotation generators' tangents at a random integer point mod {self.prime})"
        )

    def to_dict(self) -> dict:
        return {"bound": self.bound, "dim": self.dim, "orbit_dim": self.orbit_dim, "prime": self.prime,
                "seed": self.seed, "method": self.describe()}


def orbit_bound(signature: Signature, seed: int = 0, p: int = PRIME) -> Bound:
    """Generic orbit dimension from the group's tangents (three for SO(3)) at a random integer point.

    The point is drawn with small integers so the tangents are exact integers;
    their modular rank is a lower bound on the generic orbit dimension, so the
    bound is never underestimated.
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(-1000, 1001, size=signature.dim, dtype=np.int64)
    tangents = orbit_tangents(x, signature)
    return Bound(signature.dim, modular_rank(tangents, p), p, seed)


def random_point(signature: Signature, seed: int) -> np.ndarray:
    return random_integer_point(signature, np.random.default_rng(seed))


# ModularEchelon and modular_rank live in optinv.algebra.modular; importable from here as before.
__all__ = ["Bound", "ModularEchelon", "float_rank", "modular_rank", "orbit_bound", "random_point"]
