"""Radial basis and angular tensors for the ACE atomic base A_{n,l}.

* :class:`RadialBasis`: ``R_n^{(a,b)}(r) = f_c(r) * sum_k W^{(a,b)}_{nk} T_k(x)``, with
  Chebyshev polynomials ``T_k`` of ``x = 2 r / r_c - 1``, the smooth cutoff
  ``f_c(r) = (1 + cos(pi r / r_c)) / 2`` and a fixed, seeded orthogonal mixing matrix
  ``W^{(a,b)}`` per ordered element pair (centre ``a``, neighbour ``b``).  The mixing makes
  every radial channel see neighbours of different elements differently, so one set of
  ``n_rad`` channels per rank serves all elements (the signature does not grow with the
  number of elements).
* :func:`unit_tensor_coefficients`: the free coefficients (``hippynn`` convention of
  :mod:`optinv.algebra.cartesian`) of the symmetric traceless part of ``u^{(x)l}``.

>>> import torch
>>> u = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
>>> unit_tensor_coefficients(u, 2)   # (zz - I/3): q00=-1/3, q01=q02=0, q11=-1/3, q12=0
tensor([[-0.3333,  0.0000,  0.0000, -0.3333,  0.0000]], dtype=torch.float64)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from optinv.algebra.cartesian import coefficient_map


@lru_cache(maxsize=None)
def detracer(l: int) -> np.ndarray:
    """Matrix ``(2l+1, 3**l)``: flattened symmetric tensor -> free coefficients of its traceless part.

    The traceless part is the orthogonal (Frobenius) projection onto the symmetric traceless
    tensors, which are the image of ``C = coefficient_map(l)``; so the coefficients are
    ``(C^T C)^{-1} C^T vec(T)``.
    """
    C = coefficient_map(l).reshape(-1, 2 * l + 1).astype(np.float64)
    return np.linalg.solve(C.T @ C, C.T)


def unit_tensor_coefficients(u: torch.Tensor, l: int) -> torch.Tensor:
    """Free coefficients ``(P, 2l+1)`` of the traceless part of ``u^{(x)l}`` for rows ``u`` ``(P, 3)``."""
    if l == 0:
        return torch.ones(u.shape[0], 1, dtype=u.dtype, device=u.device)
    if l == 1:
        return u
    outer = u
    for _ in range(l - 1):
        outer = (outer.unsqueeze(-1) * u.unsqueeze(1)).reshape(u.shape[0], -1)
    L = torch.as_tensor(detracer(l), dtype=u.dtype, device=u.device)
    return outer @ L.T


def cutoff_function(r: torch.Tensor, cutoff: float) -> torch.Tensor:
    """``(1 + cos(pi r / r_c)) / 2`` inside the cutoff, 0 outside (continuous with its derivative)."""
    fc = 0.5 * (torch.cos(math.pi * r / cutoff) + 1.0)
    return torch.where(r < cutoff, fc, torch.zeros_like(fc))


def chebyshev(x: torch.Tensor, n: int) -> torch.Tensor:
    """``T_0(x) .. T_{n-1}(x)`` as ``(P, n)``."""
    out = [torch.ones_like(x)]
    if n > 1:
        out.append(x)
    for _ in range(2, n):
        out.append(2 * x * out[-1] - out[-2])
    return torch.stack(out[:n], dim=-1)


class RadialBasis:
    """Chebyshev radial functions with a smooth cutoff and per-element-pair mixing.

    ``species`` lists the atomic numbers the basis knows, in the order used for the
    species indices passed to :meth:`__call__`.
    """

    def __init__(self, n_rad: int, cutoff: float, species, seed: int = 0):
        if n_rad < 1:
            raise ValueError(f"n_rad: expected >= 1, got {n_rad}")
        if cutoff <= 0:
            raise ValueError(f"cutoff: expected > 0, got {cutoff}")
        self.n_rad = int(n_rad)
        self.cutoff = float(cutoff)
        self.species = tuple(int(z) for z in species)
        self.seed = int(seed)
        S = len(self.species)
        W = np.empty((S, S, n_rad, n_rad))
        for a, za in enumerate(self.species):
            for b, zb in enumerate(self.species):
                rng = np.random.default_rng([self.seed, za, zb])
                q, r = np.linalg.qr(rng.normal(size=(n_rad, n_rad)))
                W[a, b] = q * np.sign(np.diag(r))  # Haar-random orthogonal, deterministic
        self.mixing = W

    def species_index(self, numbers) -> np.ndarray:
        """Map atomic numbers to indices into :attr:`species` (error on unknown elements)."""
        lookup = {z: k for k, z in enumerate(self.species)}
        try:
            return np.array([lookup[int(z)] for z in np.asarray(numbers).ravel()], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"atomic number {exc.args[0]} not in the radial basis species {self.species}") from None

    def __call__(self, r: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        """``R_n(r)`` as ``(P, n_rad)`` for pair distances ``r`` and species indices of both ends."""
        x = 2.0 * r / self.cutoff - 1.0
        T = chebyshev(x, self.n_rad) * cutoff_function(r, self.cutoff).unsqueeze(-1)
        W = torch.as_tensor(self.mixing, dtype=r.dtype, device=r.device)[centre, neighbour]  # (P, n, k)
        return torch.einsum("pnk,pk->pn", W, T)

    def to_dict(self) -> dict:
        return {"n_rad": self.n_rad, "cutoff": self.cutoff, "species": list(self.species), "seed": self.seed}
