"""Exact central finite-difference stencils for polynomials of known degree."""

from __future__ import annotations

import math

import numpy as np


def central_weights(m: int) -> np.ndarray:
    """Weights ``w_j`` (``j = -m..m``) of the central first-derivative stencil at unit spacing.

    Exact for polynomials of degree ``<= 2m``:
    ``f'(0) = sum_j w_j f(j)``.

    >>> central_weights(2).tolist()
    [0.08333333333333333, -0.6666666666666666, 0.0, 0.6666666666666666, -0.08333333333333333]
    """
    w = np.zeros(2 * m + 1)
    for j in range(1, m + 1):
        value = (-1) ** (j + 1) * math.factorial(m) ** 2 / (j * math.factorial(m - j) * math.factorial(m + j))
        w[m + j], w[m - j] = value, -value
    return w


class Stencil:
    """Derivative along a direction ``v`` by an exact polynomial stencil at ``t = j / m``, ``|t| <= 1``."""

    def __init__(self, degree: int):
        self.m = max(1, math.ceil(degree / 2))
        self.t = np.arange(-self.m, self.m + 1) / self.m
        self.w = central_weights(self.m) * self.m  # spacing 1/m
        self.abs_sum = float(np.abs(self.w).sum())

    def derivative(self, fn, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``d/dt fn(x + t v)`` at 0 for rows ``x``, directions ``v`` (both ``(N, D)``); one batched call."""
        nz = [j for j in range(len(self.t)) if self.w[j] != 0.0]
        pts = np.concatenate([x + self.t[j] * v for j in nz])
        vals = fn(pts).reshape(len(nz), x.shape[0], -1)
        return np.einsum("j,jnk->nk", self.w[nz], vals)
