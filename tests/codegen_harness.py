"""The one harness that runs every kernel backend against the engine's reference.

A backend maps ``(op, *float64 arrays)`` to a float64 NumPy result, hiding how it
gets there (C via NumPy in float32/float64, the PyTorch adapter, CuPy).  The
reference is the engine's NumPy einsum evaluator and its gradient, independent
of generated code.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass

import numpy as np

from optinv.algebra.evaluate import evaluate, gradient
from optinv.algebra.signature import Signature
from optinv.testing import as_graphs, magnitude_bound

RTOL = {"float64": 1e-12, "float32": 1e-5}


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def has_gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device
        return False


def has_nvcc() -> bool:
    return shutil.which("nvcc") is not None


@dataclass(frozen=True)
class Backend:
    name: str
    dtype: str
    kind: str  # "c", "torch", "cupy", "torch-cuda"

    def available(self) -> bool:
        if self.kind == "torch":
            return has_torch()
        if self.kind in ("cupy", "torch-cuda"):
            return has_gpu() and (self.kind == "cupy" or has_torch())
        return True

    def run(self, module, op: str, *arrays: np.ndarray) -> np.ndarray:
        dt = np.dtype(self.dtype)
        arrs = [np.ascontiguousarray(a, dtype=dt) for a in arrays]
        if self.kind == "c":
            return getattr(module, op)(*arrs).astype(np.float64)
        if self.kind == "cupy":
            import cupy

            return cupy.asnumpy(getattr(module, op)(*(cupy.asarray(a) for a in arrs))).astype(np.float64)
        import torch

        device = "cuda" if self.kind == "torch-cuda" else "cpu"
        ts = [torch.from_numpy(a).to(device) for a in arrs]
        return _torch_op(module, op, *ts).detach().cpu().numpy().astype(np.float64)


def _torch_op(module, op: str, *ts):
    """Every op through autograd of the adapter, so the harness checks the autograd wiring too."""
    import torch

    x = ts[0].clone().requires_grad_(True)
    y = module.torch_invariants(x)
    if op == "forward":
        return y
    if op == "jvp":
        # J u = d/dg <g, J^T ... >: differentiate the VJP with respect to g
        g = torch.zeros_like(y, requires_grad=True)
        (gx,) = torch.autograd.grad(y, x, grad_outputs=g, create_graph=True)
        (ju,) = torch.autograd.grad(gx, g, grad_outputs=ts[1])
        return ju
    (gx,) = torch.autograd.grad(y, x, grad_outputs=ts[1], create_graph=(op == "hvp"))
    if op == "vjp":
        return gx
    (hu,) = torch.autograd.grad(gx, x, grad_outputs=ts[2])
    return hu


BACKENDS = [
    Backend("c-f64", "float64", "c"),
    Backend("c-f32", "float32", "c"),
    Backend("torch-f64", "float64", "torch"),
    Backend("torch-f32", "float32", "torch"),
    Backend("cupy-f64", "float64", "cupy"),
    Backend("cupy-f32", "float32", "cupy"),
    Backend("torch-cuda-f32", "float32", "torch-cuda"),
]


def reference(op: str, graphs, signature: Signature, x, g=None, u=None) -> np.ndarray:
    """Engine reference for each op; the HVP by Richardson-extrapolated differences of the exact gradient."""
    if op == "forward":
        return evaluate(graphs, x, signature)
    if op == "vjp":
        return np.einsum("nk,nkd->nd", g, gradient(graphs, x, signature))
    if op == "jvp":
        return np.einsum("nkd,nd->nk", gradient(graphs, x, signature), u)
    # sum_k g_k H_k u: the gradient is a polynomial in h along u; extrapolate central differences
    scale = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300) / np.maximum(
        np.linalg.norm(u, axis=1, keepdims=True), 1e-300)

    def central(h):
        hp = gradient(graphs, x + h * scale * u, signature)
        hm = gradient(graphs, x - h * scale * u, signature)
        return np.einsum("nk,nkd->nd", g, hp - hm) / (2 * h * scale)

    d1, d2 = central(1e-2), central(5e-3)
    d3 = central(2.5e-3)
    r1 = (4 * d2 - d1) / 3
    r2 = (4 * d3 - d2) / 3
    return (16 * r2 - r1) / 15


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
    """Compare one backend's op on rows ``x`` with the reference, with a sound tolerance."""
    sig = Signature.from_dict(module.METADATA["signature"])
    graphs = as_graphs(module.EINSUMS, sig)
    n, K, D = x.shape[0], module.K, module.D
    g = rng.normal(size=(n, K))
    u = rng.normal(size=(n, D)) * np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-300)
    if backend.dtype == "float32":  # compare against the rounded inputs the kernel actually sees
        x, g, u = (a.astype(np.float32).astype(np.float64) for a in (x, g, u))
    args = {"forward": (x,), "vjp": (x, g), "jvp": (x, u), "hvp": (x, g, u)}[op]
    ours = backend.run(module, op, *args)
    ref = reference(op, graphs, sig, x, g=g, u=u)
    rtol = RTOL[backend.dtype]
    if op == "forward":
        scale = magnitude_bound(graphs, sig, x) + np.finfo(np.float64).tiny
    else:
        # norm-wise per row: rounding is relative to the largest term in the row
        row = np.abs(ref).max(axis=1, keepdims=True)
        scale = np.broadcast_to(row, ref.shape) + np.finfo(np.float64).tiny
        if op == "hvp":
            rtol = max(rtol, 1e-7)  # the reference itself comes from extrapolated differences
    assert_close(op, ours, ref, scale, rtol, f"{module.METADATA['name']} [{backend.name}]")
