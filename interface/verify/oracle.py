"""The one oracle and the one tolerance rule, shared by ``optinv verify`` and the test harness.

The reference is the engine (:func:`optinv.algebra.evaluate.evaluate` and
:func:`~optinv.algebra.evaluate.gradient`, independent of generated code); the
tolerance is a relative rounding allowance (:data:`RTOL`, a convention) times
the magnitude polynomial ``Q`` of each invariant
(:func:`optinv.testing.magnitude_bound`) or its derivatives, which bounds every
term of every evaluation order, so outputs that cancel to zero are judged
correctly.

Below the normal range a dtype no longer rounds relatively: every rounding
into the subnormal range errs by up to half of ``smallest_subnormal``, and an
input entry (a rotated row, say) smaller than ``tiny`` carries that absolute
error too.  So every tolerance here has two floors (:func:`absolute_floor`,
:func:`input_floor`): the magnitude polynomial is taken at ``|x| + tiny`` and
``flops * smallest_subnormal`` is added, ``flops`` being the program's own
operation count.  No tolerance is below what the dtype can represent.
"""



from __future__ import annotations

import numpy as np

from optinv.algebra.evaluate import evaluate, gradient
from optinv.algebra.signature import EPSILON, Signature
from optinv.testing import as_graphs, magnitude_bound
from optinv.verify.stencils import Stencil

#: Relative rounding allowed per evaluation, against the magnitude polynomial (a convention: see module doc).
RTOL = {"float64": 1e-12, "float32": 1e-5}
#: Invariance compares two evaluations at rotated points (the rotation itself rounds too).
INVARIANCE_RTOL = {"float64": 1e-10, "float32": 1e-5}


def input_floor(dtype) -> float:
    """The absolute rounding an input entry of ``dtype`` can carry: the smallest normal number."""
    return float(np.finfo(np.dtype(dtype)).tiny)


def absolute_floor(dtype, flops: int) -> float:
    """Absolute error of ``flops`` roundings into the subnormal range of ``dtype`` (half a quantum each, doubled)."""
    return float(max(int(flops), 1) * np.finfo(np.dtype(dtype)).smallest_subnormal)


def floored_magnitude(graphs, signature: Signature, dtype):
    """The magnitude polynomial at ``|rows| + input_floor(dtype)``: a callable on rows for the tolerances."""
    floor = input_floor(dtype)
    return lambda rows: magnitude_bound(graphs, signature, np.abs(np.asarray(rows, dtype=np.float64)) + floor)


def module_flops(module, op: str) -> int:
    """The recorded operation count of ``op`` per row (a large default when the metadata has none)."""
    flops = module.METADATA.get("flops", {}) if isinstance(module.METADATA, dict) else {}
    value = flops.get(op) if isinstance(flops, dict) else None
    return int(value) if isinstance(value, int) and value > 0 else 10_000


def coefficient_scales(signature: Signature, x: np.ndarray) -> np.ndarray:
    """Per-coefficient step ``(N, D)``: the norm of the coefficient's tensor, else of the row, else 1."""
    out = np.empty_like(x)
    row = np.linalg.norm(x, axis=1)
    row = np.where(row > 0, row, 1.0)
    for sl in signature.slices().values():
        t = np.linalg.norm(x[:, sl], axis=1)
        out[:, sl] = np.where(t > 0, t, row)[:, None]
    return out


def magnitudes(graphs, signature: Signature, x: np.ndarray, u: np.ndarray, s: np.ndarray):
    """The magnitude polynomial ``Q`` (:func:`optinv.testing.magnitude_bound`) where the tolerances need it.

    ``Q_k`` has nonnegative coefficients and dominates every term of ``I_k`` in
    any evaluation order.  So for ``y >= 0``: ``Q_k(y + s e_d) / s`` bounds the
    rounding of differences of ``I_k`` along ``s e_d``, and
    ``(Q_k(y + s e_d) - Q_k(y)) / s >= dQ_k/dy_d`` bounds the terms of the
    derivative kernels.  Returns, each ``(N, K)`` or ``(N, D, K)``, for
    ``y = |x|`` and ``y = |x| + |u|`` (which covers the whole stencil segment):
    ``Q(|x|)``, ``Q(|x| + s_d e_d)``, ``Q(|x| + |u|)``, ``Q(|x| + |u| + s_d e_d)``.
    One batched evaluation.
    """
    N, D = x.shape
    parts = []
    for y in (np.abs(x), np.abs(x) + np.abs(u)):
        shifted = np.repeat(y[:, None, :], D, axis=1)
        shifted[:, np.arange(D), np.arange(D)] += s
        parts += [y, shifted.reshape(N * D, D)]
    q = magnitude_bound(graphs, signature, np.concatenate(parts))
    out, at = [], 0
    for part in parts:
        out.append(q[at:at + len(part)])
        at += len(part)
    return out[0], out[1].reshape(N, D, -1), out[2], out[3].reshape(N, D, -1)


def first_bad(ours, ref, tol):
    """``((row, column), count)`` of the worst entry outside ``tol`` (equal values always pass), or None."""
    excess = np.abs(ours - ref) - tol
    bad = ~((np.abs(ours - ref) <= tol) | (ours == ref))
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(np.where(bad, excess, -np.inf))), excess.shape)
    return idx, int(bad.sum())


def polynomial_degree(graphs) -> int:
    """The largest number of tensor factors (Levi-Civita symbols are constants) of any invariant."""
    return max(sum(lab != EPSILON for lab in g.labels) for g in graphs)


def reference(op: str, graphs, signature: Signature, x, g=None, u=None) -> np.ndarray:
    """The engine's value of ``op`` at rows ``x`` (float64): forward, ``g . J``, ``J u`` or ``sum_k g_k H_k u``.

    The HVP is the exact central stencil (degree ``p - 1`` in ``t``) of the
    engine's VJP along ``u``, ``t`` in ``[-1, 1]``: only rounding remains.
    """
    if op == "forward":
        return evaluate(graphs, x, signature)
    if op == "vjp":
        return np.einsum("nk,nkd->nd", g, gradient(graphs, x, signature))
    if op == "jvp":
        return np.einsum("nkd,nd->nk", gradient(graphs, x, signature), u)
    n = x.shape[0]
    stencil = Stencil(max(polynomial_degree(graphs) - 1, 1))

    def vjp(rows):
        return np.einsum("nk,nkd->nd", np.tile(g, (len(rows) // n, 1)), gradient(graphs, rows, signature))

    return stencil.derivative(vjp, x, u)


def tolerance(op: str, graphs, signature: Signature, x, g, u, dtype: str, ref, flops: int = 10_000) -> np.ndarray:
    """Allowed ``|kernel - reference|`` per entry: rounding of the kernel (``RTOL[dtype]``) and of the
    float64 reference, each times the magnitude polynomial (or its derivative bounds) of the terms,
    taken at ``|x| + input_floor(dtype)``, plus ``absolute_floor(dtype, flops)``."""
    r_kernel, r64 = RTOL[dtype], RTOL["float64"]
    atol = absolute_floor(dtype, flops)
    y = np.abs(np.asarray(x, dtype=np.float64)) + input_floor(dtype)
    if op == "forward":
        return atol + r_kernel * np.maximum(np.abs(ref), magnitude_bound(graphs, signature, y))
    s = coefficient_scales(signature, np.asarray(x, dtype=np.float64))  # steps from x itself (1 on zero rows)

    base, Qs, Qu, Qus = magnitudes(graphs, signature, y, u, s)
    if op == "vjp":
        dQ = np.maximum(Qs - base[:, None, :], 0.0) / s[:, :, None]  # >= dQ_k/dy_d at |x|
        return atol + (r_kernel + r64) * np.einsum("nk,ndk->nd", np.abs(g), dQ)
    if op == "jvp":
        return atol + (r_kernel + r64) * np.maximum(Qu - base, 0.0)
    stencil = Stencil(max(polynomial_degree(graphs) - 1, 1))
    dQu = np.maximum(Qus - Qu[:, None, :], 0.0) / s[:, :, None]  # >= dQ_k/dy_d at |x| + |u|
    return atol + (r_kernel + r64 * stencil.abs_sum) * np.einsum("nk,ndk->nd", np.abs(g), dQu)



def check_op(module, backend, op: str, x: np.ndarray, rng: np.random.Generator) -> None:
    """Assert that ``backend`` runs ``op`` of ``module`` like the engine at rows ``x`` (random ``g``, ``u``)."""
    sig = Signature.from_dict(module.METADATA["signature"])
    graphs = as_graphs(module.EINSUMS, sig)
    n = x.shape[0]
    x = backend.cast(x)  # compare against the rounded inputs the kernel actually sees
    g = backend.cast(rng.normal(size=(n, len(graphs))))
    u = backend.cast(rng.normal(size=x.shape) * coefficient_scales(sig, x))
    args = {"forward": (x,), "vjp": (x, g), "jvp": (x, u), "hvp": (x, g, u)}[op]
    ours = backend(module, op, *args)
    ref = reference(op, graphs, sig, x, g=g, u=u)
    tol = tolerance(op, graphs, sig, x, g, u, backend.dtype, ref, flops=module_flops(module, op))
    bad = first_bad(ours, ref, tol)
    if bad:
        (r, c), count = bad
        raise AssertionError(
            f"{module.METADATA['name']} [{backend.name}] {op}: {count} entries off; worst at row {r}, column {c}: "
            f"ours {ours[r, c]!r}, reference {ref[r, c]!r}, tolerance {tol[r, c]:.3g}; "
            f"row {r} = {np.array2string(x[r], precision=6, max_line_width=10_000)}")
