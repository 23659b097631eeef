"""The one harness that runs every kernel backend against the engine's reference.

A backend maps ``(op, *float64 arrays)`` to a float64 NumPy result, hiding how it
gets there (C via NumPy in float32/float64, the PyTorch adapter, CuPy).  The
reference is the engine's NumPy einsum evaluator and its gradient, independent
of generated code.
"""

from __future__ import annotations

import shutil

import numpy as np

from optinv.algebra.evaluate import evaluate, gradient
from optinv.algebra.signature import Signature
from optinv.testing import as_graphs, magnitude_bound
from optinv.verify import ALL_BACKENDS, central_weights

RTOL = {"float64": 1e-12, "float32": 1e-5}


def has_nvcc() -> bool:
    return shutil.which("nvcc") is not None


# The same backends `optinv verify` runs (C, PyTorch adapter, CuPy, PyTorch on CUDA): one harness.
BACKENDS = ALL_BACKENDS


def reference(op: str, graphs, signature: Signature, x, g=None, u=None) -> np.ndarray:
    """Engine reference for each op; the HVP by an exact polynomial stencil on the reference gradient."""
    if op == "forward":
        return evaluate(graphs, x, signature)
    if op == "vjp":
        return np.einsum("nk,nkd->nd", g, gradient(graphs, x, signature))
    if op == "jvp":
        return np.einsum("nkd,nd->nk", gradient(graphs, x, signature), u)
    return hvp_reference(graphs, signature, x, g, u)[0]


def hvp_reference(graphs, signature: Signature, x, g, u) -> tuple[np.ndarray, np.ndarray]:
    """``sum_k g_k H_k u`` and the size of the terms it was summed from (for the rounding tolerance).

    Along u the gradient is a polynomial of degree <= max degree - 1 in t, so a central
    stencil with enough points differentiates it exactly: only rounding remains.
    """
    degree = max(g_.degree for g_ in graphs)
    m = max(1, degree // 2)
    weights = central_weights(m) * m  # spacing 1/m, |t| <= 1
    # steps as long as the row (or as u, for a zero row): rounding stays relative to the row's terms
    unorm = np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
    scale = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), unorm) / unorm
    total, terms = np.zeros_like(x), np.zeros_like(x)
    for j, w in enumerate(weights):
        if w:
            gj = np.einsum("nk,nkd->nd", g, gradient(graphs, x + (j - m) / m * scale * u, signature))
            total += w * gj
            terms += abs(w) * np.abs(gj)
    return total / scale, terms / scale


def assert_close(op: str, ours, ref, tol_scale, rtol: float, what: str) -> None:
    err = np.abs(ours - ref)
    bad = err > rtol * tol_scale
    if bad.any():
        n, k = np.argwhere(bad)[0]
        raise AssertionError(
            f"{what} {op}: {bad.sum()} entries off; first at row {n}, column {k}: ours {ours[n, k]!r}, "
            f"reference {ref[n, k]!r}, tolerance {rtol * tol_scale[n, k]:.3g}"
        )


def check_backend(module, backend: Backend, op: str, x: np.ndarray, rng) -> None:
    """Compare one backend's op on rows ``x`` with the reference, tolerances scaled by the terms' size."""
    sig = Signature.from_dict(module.METADATA["signature"])
    graphs = as_graphs(module.EINSUMS, sig)
    n, K, D = x.shape[0], module.K, module.D
    g = rng.normal(size=(n, K))
    u = rng.normal(size=(n, D)) * np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-300)
    if backend.dtype == "float32":  # compare against the rounded inputs the kernel actually sees
        x, g, u = (a.astype(np.float32).astype(np.float64) for a in (x, g, u))
    args = {"forward": (x,), "vjp": (x, g), "jvp": (x, u), "hvp": (x, g, u)}[op]
    ours = backend(module, op, *args)
    ref = reference(op, graphs, sig, x, g=g, u=u)
    rtol = RTOL[backend.dtype]
    if op == "forward":
        scale = magnitude_bound(graphs, sig, x) + np.finfo(np.float64).tiny
    else:
        # norm-wise per row: rounding is relative to the largest term in the row
        row = np.abs(ref).max(axis=1, keepdims=True)
        scale = np.broadcast_to(row, ref.shape) + np.finfo(np.float64).tiny
        if op == "hvp":  # the stencil's own rounding is relative to the terms it sums
            scale = scale + hvp_reference(graphs, sig, x, g, u)[1]
    assert_close(op, ours, ref, scale, rtol, f"{module.METADATA['name']} [{backend.name}]")
