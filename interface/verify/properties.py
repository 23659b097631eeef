"""``optinv verify``: property-based verification of a generated module.

A user who compiled (or vendored) a module checks it, without trusting any of
its code, against the engine:

1. **invariance** -- outputs unchanged under rotations of the input tensors and,
   with pseudoscalars changing sign, under reflections; the group acts through
   the engine's :func:`~optinv.algebra.cartesian.transform_rows`;
2. **reference** -- agreement with the engine's NumPy evaluator rebuilt from the
   einsum strings in ``metadata.json``, in float64 and float32, on random,
   degenerate (zero rows, one tensor only) and badly scaled rows;
3. **derivatives** -- the VJP against finite differences of the module's own
   forward, the JVP against finite differences of the forward (and the adjoint
   identity ``<g, J u> = <J^T g, u>``), the g-weighted HVP against finite
   differences of the VJP.  Kernels are polynomials of known degree ``p``, so a
   central stencil with ``2 * ceil(p / 2)`` points is *exact* (polynomial
   extrapolation), and the only error left is rounding, scaled by the
   magnitude polynomial of every invariant
   (:func:`optinv.testing.magnitude_bound`);
4. **rank** -- the rank of the outputs' Jacobian (from the module's VJP and JVP,
   float64) at random points equals the number of outputs and, where the
   metadata says the set is complete, the bound; cross-checked with the exact
   modular rank and orbit bound of the engine;
5. **integrity** -- the sources match the sha256 in the metadata, and
   regenerating from the recorded request gives identical files.

Properties 1-3 run on every backend: C (float64, float32), the PyTorch adapter
(if torch imports) and CUDA through CuPy (reported SKIP without a GPU).
Examples come from :mod:`optinv.testing`'s hypothesis strategies, seeded, with no
example database (nothing is written into the working directory).

>>> report = verify_module("hop_l1_n2", max_examples=5, backends=["c-f64"])  # doctest: +SKIP
>>> report.ok, [r.status for r in report.results][:2]  # doctest: +SKIP
(True, ['PASS', 'PASS'])
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from optinv.algebra.errors import OptinvError
from optinv.algebra.signature import Signature

PROPERTIES = ("invariance", "reference", "derivatives", "rank", "integrity")
BACKEND_NAMES = ("c-f64", "c-f32", "torch-f64", "torch-f32", "cuda-f64", "cuda-f32", "torch-cuda-f64", "torch-cuda-f32")
DEFAULT_MAX_EXAMPLES = 100

#: Relative rounding allowed per evaluation, against the magnitude polynomial (a convention: see module doc).
RTOL = {"float64": 1e-12, "float32": 1e-5}
#: Invariance compares two evaluations at rotated points (the rotation itself rounds too).
INVARIANCE_RTOL = {"float64": 1e-10, "float32": 1e-5}


# -- report -----------------------------------------------------------------------------


@dataclass
class PropertyResult:
    """Outcome of one property on one backend (``backend`` is ``"-"`` for backend-free properties)."""

    property: str
    backend: str
    status: str  # "PASS", "FAIL" or "SKIP"
    examples: int
    message: str
    counterexample: dict | None = None
    seconds: float = 0.0

    def line(self) -> str:
        what = f"{self.property} [{self.backend}]" if self.backend != "-" else self.property
        if self.status == "SKIP" or (self.examples == 0 and self.counterexample is None):
            count = "-"
        elif self.status == "FAIL" and self.counterexample is not None:
            count = f"failed on example {self.examples}"
        else:
            count = f"{self.examples} example{'s' if self.examples != 1 else ''}"
        text = f"{self.status:<4}  {what:<26} {count:<22} {self.message}"
        if self.status == "FAIL" and self.counterexample:
            text += "\n      shrunk counterexample: " + _format_counterexample(self.counterexample)
        return text


@dataclass
class VerifyReport:
    """Everything ``optinv verify`` found; :meth:`to_json` is the ``--json`` file."""

    module: str
    path: str
    signature: str
    K: int
    seed: int
    max_examples: int
    results: list[PropertyResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed (and something passed); SKIPs are not failures."""
        return not self.failed and any(r.status == "PASS" for r in self.results)

    @property
    def failed(self) -> list[PropertyResult]:
        return [r for r in self.results if r.status == "FAIL"]

    def header(self) -> str:
        return (f"optinv verify {self.module} ({self.path}): {self.K} invariants of {self.signature}; "
                f"seed {self.seed}, up to {self.max_examples} examples per property")

    def summary(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in ("PASS", "FAIL", "SKIP")}
        verdict = "OK" if self.ok else "FAILED: " + ", ".join(sorted({f"{r.property}" for r in self.failed}))
        return (f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
                f"in {self.seconds:.1f}s: {verdict}")

    def report(self) -> str:
        return "\n".join([self.header(), *(r.line() for r in self.results), self.summary()])

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _format_counterexample(ce: dict) -> str:
    parts = []
    for key, value in ce.items():
        if isinstance(value, np.ndarray):
            value = json.dumps(value.tolist())
        parts.append(f"{key}={value}")
    return "; ".join(parts)


# -- loading ----------------------------------------------------------------------------

_LOADS = itertools.count()


def resolve_module_path(path) -> Path:
    """A module directory from a path (directory or its ``metadata.json``) or a committed module's name."""
    p = Path(path)
    if p.is_file() and p.name == "metadata.json":
        p = p.parent
    if p.is_dir():
        if not (p / "metadata.json").is_file() or not (p / "__init__.py").is_file():
            raise OptinvError(f"PATH: {str(path)!r} is not a generated optinv module (no metadata.json and __init__.py)")
        return p.resolve()
    from optinv.codegen.catalog import committed_modules, generated_dir

    if str(path) in committed_modules():
        return (generated_dir() / str(path)).resolve()
    names = ", ".join(sorted(committed_modules()))
    raise OptinvError(f"PATH: no generated module at {str(path)!r} (give a directory that `optinv compile` "
                      f"wrote, or a committed module: {names})")


def _load_fresh(path: Path):
    """Import the package at ``path`` under a fresh name (edited files are never served from a stale import)."""
    meta = json.loads((path / "metadata.json").read_text())
    name = f"optinv_verify_{meta.get('name', 'module')}_{next(_LOADS)}"
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py", submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise OptinvError(f"PATH: importing {path} failed: {type(exc).__name__}: {exc}") from None
    return module


# -- backends ---------------------------------------------------------------------------


def _cuda_unavailable() -> str | None:
    """Why the CUDA backend cannot run here, or None when it can."""
    if importlib.util.find_spec("cupy") is None:
        return "no GPU: cupy is not importable"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        return f"no GPU: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None if count > 0 else "no GPU: CuPy sees no CUDA device"


def _torch_unavailable() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not importable"
    return None


@dataclass(frozen=True)
class Backend:
    """One way of running the module's kernels; takes and returns float64 NumPy arrays."""

    name: str
    kind: str  # "c", "torch", "cuda"
    dtype: str

    def unavailable(self) -> str | None:
        if self.kind == "torch":
            return _torch_unavailable()
        if self.kind == "cuda":
            return _cuda_unavailable()
        if self.kind == "torch-cuda":
            return _torch_unavailable() or _cuda_unavailable()
        return None

    def in_float64(self) -> "Backend":
        return Backend(self.name.rsplit("-", 1)[0] + "-f64", self.kind, "float64")

    def cast(self, a: np.ndarray) -> np.ndarray:
        """Round an input to what the kernel sees (float64 copy of the dtype's values)."""
        return np.asarray(a, dtype=self.dtype).astype(np.float64)

    def __call__(self, module, op: str, *arrays: np.ndarray) -> np.ndarray:
        arrs = [np.ascontiguousarray(a, dtype=self.dtype) for a in arrays]
        if self.kind == "c":
            out = getattr(module, op)(*arrs)
        elif self.kind == "cuda":
            import cupy

            out = cupy.asnumpy(getattr(module, op)(*(cupy.asarray(a) for a in arrs)))
        else:
            out = _torch_op(module, op, arrs, device="cuda" if self.kind == "torch-cuda" else "cpu")
        return np.asarray(out, dtype=np.float64)


def _torch_op(module, op: str, arrs, device: str = "cpu"):
    """Every op through the adapter's autograd (the wiring users train with), on CPU or CUDA tensors."""
    import torch

    ts = [torch.from_numpy(a).to(device) for a in arrs]
    x = ts[0].clone().requires_grad_(True)
    y = module.torch_invariants(x)
    if op == "forward":
        return y.detach().cpu().numpy()
    if op == "jvp":  # J u = d/dg <J^T g, u>: differentiate the VJP with respect to g
        g = torch.zeros_like(y, requires_grad=True)
        (gx,) = torch.autograd.grad(y, x, grad_outputs=g, create_graph=True)
        (ju,) = torch.autograd.grad(gx, g, grad_outputs=ts[1])
        return ju.detach().cpu().numpy()
    (gx,) = torch.autograd.grad(y, x, grad_outputs=ts[1], create_graph=(op == "hvp"))
    if op == "vjp":
        return gx.detach().cpu().numpy()
    (hu,) = torch.autograd.grad(gx, x, grad_outputs=ts[2])
    return hu.detach().cpu().numpy()


ALL_BACKENDS = [Backend(n, n.rsplit("-", 1)[0], "float64" if n.endswith("f64") else "float32") for n in BACKEND_NAMES]
#: The backends a module is checked on, in report order.


def parse_backends(spec) -> list[Backend]:
    """Backends by name (``c-f64``) or kind (``c``, ``torch``, ``cuda``); None: all of them."""
    if spec is None:
        return list(ALL_BACKENDS)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    chosen = []
    for item in items:
        match = [b for b in ALL_BACKENDS if item in (b.name, b.kind)]
        if not match:
            raise OptinvError(f"--backends: unknown backend {item!r}; expected some of "
                              f"{', '.join(BACKEND_NAMES)} or c, torch, cuda")
        chosen += [b for b in match if b not in chosen]
    if not chosen:
        raise OptinvError("--backends: expected at least one backend")
    return sorted(chosen, key=ALL_BACKENDS.index)


def parse_properties(spec) -> list[str]:
    if spec is None:
        return list(PROPERTIES)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [s for s in items if s not in PROPERTIES]
    if unknown or not items:
        raise OptinvError(f"--properties: expected some of {', '.join(PROPERTIES)}, got {', '.join(unknown) or 'none'}")
    return [p for p in PROPERTIES if p in items]


# -- the context every check shares ----------------------------------------------------


class _Context:
    def __init__(self, path: Path, module):
        from optinv.algebra.signature import EPSILON, Signature
        from optinv.testing import as_graphs, reflection_signs

        self.path = path
        self.module = module
        self.meta = json.loads((path / "metadata.json").read_text())
        try:
            self.sig = Signature.from_dict(self.meta["signature"])
            self.einsums = list(self.meta["invariants"])
            self.graphs = as_graphs(self.einsums, self.sig)
        except (KeyError, TypeError, ValueError, OptinvError) as exc:
            raise OptinvError(f"PATH: metadata.json of {path} does not describe a module ({exc})") from None
        self.D, self.K = self.sig.dim, len(self.graphs)
        self.parities = reflection_signs(self.graphs, self.sig)
        degrees = [sum(lab != EPSILON for lab in g.labels) for g in self.graphs]
        self.degree = max(degrees)
        self.columns = []
        for spec, sl in zip(self.sig.tensors, self.sig.slices().values()):
            self.columns += [f"{spec.name}[{i}]" for i in range(sl.stop - sl.start)]

    def magnitude(self, y: np.ndarray) -> np.ndarray:
        from optinv.testing import magnitude_bound

        return magnitude_bound(self.graphs, self.sig, y)

    def output(self, k: int) -> str:
        return f"output {k} ({self.einsums[k]})"


# -- hypothesis runner -----------------------------------------------------------------


def _run_property(body, strategies: dict, max_examples: int, seed: int, summarise):
    """Run ``body(**drawn)`` under hypothesis; return ``(status, examples, message, counterexample)``."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    state = {"calls": 0, "first_failure": None, "last": None}

    def wrapped(**drawn):
        state["calls"] += 1
        try:
            body(**drawn)
        except BaseException as exc:
            if state["first_failure"] is None:
                state["first_failure"] = state["calls"]
            state["last"] = (drawn, exc)
            raise

    test = settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )(given(**strategies)(wrapped))
    test = hseed(seed)(test)
    try:
        test()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a FAIL line
        drawn, failure = state["last"] if state["last"] is not None else ({}, exc)
        message = str(failure).split("\n")[0] or type(failure).__name__
        if not isinstance(failure, AssertionError):
            message = f"{type(failure).__name__}: {message}"
        return "FAIL", state["first_failure"] or state["calls"], message, summarise(drawn)
    return "PASS", state["calls"], None, None


# -- 1. invariance -----------------------------------------------------------------------


def _check_invariance(ctx: _Context, backend: Backend, max_examples: int, seed: int):
    import optinv.testing as ot

    fn = lambda rows: backend(ctx.module, "forward", rows)  # noqa: E731
    rtol = INVARIANCE_RTOL[backend.dtype]

    def body(x, g):
        xk = np.asarray(x, dtype=backend.dtype)
        ot.assert_invariant(fn, ctx.sig, xk, g, rtol=rtol, parities=ctx.parities,
                            scale=ctx.magnitude, labels=ctx.einsums)

    status, n, message, ce = _run_property(
        body, {"x": ot.rows(ctx.sig, degenerate=True, max_rows=4), "g": ot.orthogonal()},
        max_examples, seed, lambda d: {"x": d.get("x"), "g": d.get("g"), "det": float(np.linalg.det(d["g"]))
                                       if "g" in d else None})
    if status == "PASS":
        pseudo = int(np.sum(ctx.parities < 0))
        message = (f"rotations and reflections (det -1), {pseudo} output{'s' if pseudo != 1 else ''} changing sign "
                   f"under reflections; rtol {rtol:g} of the magnitude bound")
    return status, n, message, ce


# -- 2. reference -----------------------------------------------------------------------


def _check_reference(ctx: _Context, backend: Backend, max_examples: int, seed: int):
    import optinv.testing as ot

    fn = lambda rows: backend(ctx.module, "forward", rows)  # noqa: E731
    rtol = RTOL[backend.dtype]

    def body(x):
        xk = np.asarray(x, dtype=backend.dtype)  # the reference evaluates the rounded rows in float64
        ot.assert_matches_reference(fn, ctx.graphs, ctx.sig, xk, rtol=rtol)

    status, n, message, ce = _run_property(
        body, {"x": ot.rows(ctx.sig, degenerate=True, max_rows=6)}, max_examples, seed, lambda d: {"x": d.get("x")})
    if status == "PASS":
        message = (f"engine evaluator of the {ctx.K} einsum strings on random, zero, one-tensor, huge, tiny and "
                   f"mixed-scale rows; rtol {rtol:g} of the magnitude bound")
    return status, n, message, ce


# -- 3. derivatives ---------------------------------------------------------------------


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


class _Stencil:
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


def _scales(ctx: _Context, x: np.ndarray) -> np.ndarray:
    """Per-coefficient step ``(N, D)``: the norm of the coefficient's tensor, else of the row, else 1."""
    out = np.empty_like(x)
    row = np.linalg.norm(x, axis=1)
    row = np.where(row > 0, row, 1.0)
    for sl in ctx.sig.slices().values():
        t = np.linalg.norm(x[:, sl], axis=1)
        out[:, sl] = np.where(t > 0, t, row)[:, None]
    return out


def _magnitudes(ctx: _Context, x: np.ndarray, u: np.ndarray, s: np.ndarray):
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
    q = ctx.magnitude(np.concatenate(parts))
    out, at = [], 0
    for part in parts:
        out.append(q[at:at + len(part)])
        at += len(part)
    return out[0], out[1].reshape(N, D, -1), out[2], out[3].reshape(N, D, -1)


def _first_bad(ours, ref, tol):
    excess = np.abs(ours - ref) - tol
    bad = ~((np.abs(ours - ref) <= tol) | (ours == ref))
    if not bad.any():
        return None
    idx = np.unravel_index(int(np.argmax(np.where(bad, excess, -np.inf))), excess.shape)
    return idx, int(bad.sum())


def _check_derivatives(ctx: _Context, backend: Backend, max_examples: int, seed: int):
    import optinv.testing as ot
    from hypothesis import strategies as st

    exact = backend.in_float64()  # finite differences of the module's own float64 forward / VJP
    fwd64 = lambda rows: exact(ctx.module, "forward", rows)  # noqa: E731
    stencil_f = _Stencil(ctx.degree)
    stencil_g = _Stencil(max(ctx.degree - 1, 1))
    r_kernel, r64 = RTOL[backend.dtype], RTOL["float64"]

    def fail(op, what, idx, count, ours, ref, tol, x):
        n, c = idx
        raise AssertionError(
            f"{op} {what(c)} wrong at row {n}: kernel {float(ours[n, c])!r} vs finite differences "
            f"{float(ref[n, c])!r} "
            f"(|diff| {abs(ours[n, c] - ref[n, c]):.3g} > tolerance {tol[n, c]:.3g}; {count} entries off); "
            f"row {n} = {np.array2string(x[n], precision=6, max_line_width=10_000)}"
        )

    def body(x, seed_gu):
        rng = np.random.default_rng(seed_gu)
        x = backend.cast(x)
        N, D, K = x.shape[0], ctx.D, ctx.K
        s = _scales(ctx, x)
        g = backend.cast(rng.normal(size=(N, K)))
        u = backend.cast(rng.normal(size=(N, D)) * s)
        col = lambda d: f"column {d} ({ctx.columns[d]})"  # noqa: E731

        base, Qs, Qu, Qus = _magnitudes(ctx, x, u, s)
        dQ = np.maximum(Qs - base[:, None, :], 0.0) / s[:, :, None]  # >= dQ_k/dy_d at |x|
        dQu = np.maximum(Qus - Qu[:, None, :], 0.0) / s[:, :, None]  # >= dQ_k/dy_d at |x| + |u|

        # VJP against the Jacobian by exact finite differences of the forward along each coordinate
        eye = np.eye(D)
        xs = np.repeat(x, D, axis=0)
        vs = (eye[None, :, :] * s[:, :, None]).reshape(N * D, D)
        jac = stencil_f.derivative(fwd64, xs, vs).reshape(N, D, K) / s[:, :, None]  # (N, D, K)
        ref = np.einsum("nk,ndk->nd", g, jac)
        ours = backend(ctx.module, "vjp", x, g)
        tol = (r_kernel * np.einsum("nk,ndk->nd", np.abs(g), dQ)
               + r64 * stencil_f.abs_sum * np.einsum("nk,ndk->nd", np.abs(g), Qs) / s)
        bad = _first_bad(ours, ref, tol)
        if bad:
            fail("vjp", col, *bad, ours, ref, tol, x)

        # JVP against finite differences of the forward along u
        ref = stencil_f.derivative(fwd64, x, u)
        ours = backend(ctx.module, "jvp", x, u)
        tol = r_kernel * np.maximum(Qu - base, 0.0) + r64 * stencil_f.abs_sum * Qu
        bad = _first_bad(ours, ref, tol)
        if bad:
            fail("jvp", ctx.output, *bad, ours, ref, tol, x)

        # HVP against finite differences of the module's float64 VJP along u
        vjp64 = lambda rows: exact(ctx.module, "vjp", rows, np.tile(g, (len(rows) // N, 1)))  # noqa: E731
        ref = stencil_g.derivative(vjp64, x, u)
        ours = backend(ctx.module, "hvp", x, g, u)
        tol = (r_kernel + r64 * stencil_g.abs_sum) * np.einsum("nk,ndk->nd", np.abs(g), dQu)
        bad = _first_bad(ours, ref, tol)
        if bad:
            fail("hvp", col, *bad, ours, ref, tol, x)

    status, n, message, ce = _run_property(
        body, {"x": ot.rows(ctx.sig, degenerate=True, max_rows=4), "seed_gu": st.integers(0, 2**32 - 1)},
        max_examples, seed, lambda d: {"x": d.get("x"), "seed_gu": d.get("seed_gu")})
    if status == "PASS":
        message = (f"vjp and jvp vs exact {2 * stencil_f.m}-point differences of the float64 forward "
                   f"(degree {ctx.degree}), hvp vs {2 * stencil_g.m}-point differences of the float64 vjp; "
                   f"rounding-bounded tolerance")
    elif ce is not None and ce.get("seed_gu") is not None:
        message += " (g, u = normal draws of numpy.random.default_rng(seed_gu))"
    return status, n, message, ce


# -- 4. rank ----------------------------------------------------------------------------


def _check_rank(ctx: _Context, max_examples: int, seed: int):
    from hypothesis import strategies as st

    from optinv.algebra.evaluate import PRIME
    from optinv.algebra.rank import float_rank, orbit_bound
    from optinv.algebra.select import check_invariants

    c64 = Backend("c-f64", "c", "float64")
    basis = ctx.meta.get("basis", {})
    claimed_complete = bool(basis.get("complete", False))
    claimed_bound = basis.get("bound")
    K, D = ctx.K, ctx.D
    ranks = []

    def body(seed_x):
        x = np.random.default_rng(seed_x).normal(size=(1, D))
        j_vjp = c64(ctx.module, "vjp", np.repeat(x, K, axis=0), np.eye(K))  # row k: dI_k/dx
        j_jvp = c64(ctx.module, "jvp", np.repeat(x, D, axis=0), np.eye(D)).T  # column d: dI/dx_d
        scale = np.abs(j_vjp).max(axis=1, keepdims=True) + np.abs(j_jvp).max(axis=1, keepdims=True)
        bad = _first_bad(j_vjp, j_jvp, 1e-10 * scale)
        if bad:
            (k, d), count = bad
            raise AssertionError(f"the Jacobians from vjp and jvp differ at {ctx.output(k)}, column {d} "
                                 f"({ctx.columns[d]}): {float(j_vjp[k, d])!r} vs {float(j_jvp[k, d])!r}")
        norms = np.linalg.norm(j_vjp, axis=1, keepdims=True)
        if np.any(norms == 0):
            k = int(np.flatnonzero(norms[:, 0] == 0)[0])
            raise AssertionError(f"Jacobian rank < {K}: {ctx.output(k)} has zero gradient at a random point")
        rank, sv = float_rank(j_vjp / norms)
        ranks.append(rank)
        if rank < K:
            # the first output that does not raise the rank
            k = next(k for k in range(1, K + 1) if float_rank(j_vjp[:k] / norms[:k])[0] < k) - 1
            raise AssertionError(
                f"Jacobian rank {rank} < {K} outputs at a random point: outputs not functionally independent; "
                f"{ctx.output(k)} depends on the earlier ones (singular values ratio {sv[-1] / sv[0]:.2e})")

    status, n, message, ce = _run_property(body, {"seed_x": st.integers(0, 2**32 - 1)}, max_examples, seed,
                                           lambda d: {"seed_x": d.get("seed_x")})
    if status == "FAIL":
        if ce is not None:
            message += " (x = numpy.random.default_rng(seed_x).normal(size=(1, D)))"
        return status, n, message, ce
    rank = min(ranks) if ranks else K
    check = check_invariants(ctx.einsums, ctx.sig, seed=seed)
    bound = orbit_bound(ctx.sig, seed).bound
    problems = []
    if check.rank != K:
        dependent = [k for k, e in enumerate(check.entries) if not e.independent]
        problems.append(f"exact rank mod {PRIME} is {check.rank} < {K}: dependent "
                        + ", ".join(ctx.output(k) for k in dependent))
    if check.rank != rank:
        problems.append(f"Jacobian rank {rank} from the kernels but exact rank {check.rank} from the engine")
    if claimed_bound is not None and claimed_bound != bound:
        problems.append(f"metadata states bound {claimed_bound} but the engine's orbit bound is {bound}")
    if claimed_complete and rank != bound:
        problems.append(f"metadata claims a complete set but the rank is {rank} < bound {bound}")
    if not claimed_complete and rank == bound:
        problems.append(f"metadata says incomplete but the rank {rank} reaches the bound {bound}")
    if basis.get("rank") is not None and basis.get("rank") != rank:
        problems.append(f"metadata states rank {basis.get('rank')} but the Jacobian rank is {rank}")
    n_max = ctx.meta.get("request", {}).get("n_max")
    if n_max is not None:
        # a module requested by n_max promises the maximal rank reachable with n_max factors
        from optinv.algebra.select import select_basis

        best = select_basis(ctx.sig, int(n_max), seed=seed).rank
        if rank < best:
            problems.append(f"the request (n_max={n_max}) promises the maximal rank {best} reachable with {n_max} "
                            f"factors, but the outputs reach only {rank}: an invariant is missing")
    if problems:
        return "FAIL", n, "; ".join(problems), None
    state = "complete" if rank == bound else "not complete, as the metadata states"
    return "PASS", n, (f"Jacobian rank {rank} = {K} outputs at random points (vjp = jvp^T); bound {bound} "
                       f"({state}); exact rank mod {PRIME} {check.rank}"), None


# -- 5. integrity -----------------------------------------------------------------------


def _first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y:
            return f"line {i}: {x.strip()[:60]!r} vs regenerated {y.strip()[:60]!r}"
    return f"{len(la)} lines vs {len(lb)} regenerated"


def _check_integrity(ctx: _Context):
    from optinv.codegen.build import compile_request

    problems = []
    hashes = ctx.meta.get("sha256", {})
    if not hashes:
        problems.append("metadata.json records no sha256")
    for fname, digest in sorted(hashes.items()):
        f = ctx.path / fname
        if not f.is_file():
            problems.append(f"{fname} is missing")
        elif hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            problems.append(f"{fname} does not match its sha256 in metadata.json (edited?)")
    if ctx.module.D != ctx.D or ctx.module.K != ctx.K:
        problems.append(f"the module says D={ctx.module.D}, K={ctx.module.K} but metadata.json gives "
                        f"D={ctx.D}, K={ctx.K}")
    request, name = ctx.meta.get("request"), ctx.meta.get("name")
    if not isinstance(request, dict) or not name:
        problems.append("metadata.json records no request to regenerate from")
    else:
        with tempfile.TemporaryDirectory(prefix="optinv-verify-") as tmp:
            try:
                fresh = compile_request(request, name, tmp)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"regenerating from the recorded request failed: {type(exc).__name__}: {exc}")
            else:
                expected = sorted(p.name for p in fresh.iterdir() if p.is_file())
                for fname in expected:
                    mine = ctx.path / fname
                    if not mine.is_file():
                        problems.append(f"regenerated {fname} is missing here")
                        continue
                    a, b = mine.read_bytes(), (fresh / fname).read_bytes()
                    if a != b:
                        problems.append(f"{fname} differs from the regenerated file ({_first_difference(a, b)})")
    if problems:
        return "FAIL", 0, "; ".join(problems), None
    return "PASS", 0, (f"{len(hashes)} files match their sha256; regenerated from the recorded request, "
                       f"byte-identical"), None


# -- driver -----------------------------------------------------------------------------


def verify_module(
    path,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
    backends=None,
    properties=None,
    progress=None,
) -> VerifyReport:
    """Check a generated module's properties; ``path`` is its directory or a committed module's name.

    ``backends``: names (``"c-f64"``) or kinds (``"c"``, ``"torch"``, ``"cuda"``),
    default all; unavailable ones are reported as SKIP.  ``properties``: a subset
    of :data:`PROPERTIES`.  ``progress`` is called with each result as it is
    found (and first with the header line, a string).  The same ``seed`` and ``max_examples`` give the same examples.

    >>> r = verify_module("hop_l1_n2", max_examples=3, backends="c-f64")  # doctest: +SKIP
    >>> r.ok  # doctest: +SKIP
    True
    """
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise OptinvError("optinv verify needs hypothesis (a dependency of optinv): pip install hypothesis") \
            from None
    if not isinstance(max_examples, int) or isinstance(max_examples, bool) or max_examples < 1:
        raise OptinvError(f"--max-examples: expected an integer >= 1, got {max_examples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise OptinvError(f"--seed: expected an integer >= 0, got {seed!r}")
    chosen = parse_backends(backends)
    props = parse_properties(properties)
    start = time.perf_counter()
    where = resolve_module_path(path)
    edited = _edited_python_files(where)
    if edited:  # importing would run code nobody generated: report integrity, run nothing else
        return _edited_report(where, edited, props, chosen, seed, max_examples, start, progress)
    module = _load_fresh(where)
    if hasattr(module, "set_num_threads"):
        module.set_num_threads(1)  # batches here are small: OpenMP start-up would dominate (this import only)
    ctx = _Context(where, module)
    report = VerifyReport(module=ctx.meta.get("name", where.name), path=str(where), signature=ctx.sig.describe(),
                          K=ctx.K, seed=seed, max_examples=max_examples)
    if progress:
        progress(report.header())

    def record(prop, backend, fn):
        t0 = time.perf_counter()
        try:
            status, n, message, ce = fn()
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of that property, not of verify
            status, n, message, ce = "FAIL", 0, f"{type(exc).__name__}: {exc}", None
        result = PropertyResult(prop, backend, status, n, message, ce, round(time.perf_counter() - t0, 3))
        report.results.append(result)
        if progress:
            progress(result)

    checks = {"invariance": _check_invariance, "reference": _check_reference, "derivatives": _check_derivatives}
    for prop in props:
        if prop in checks:
            for b in chosen:
                why = b.unavailable()
                if why:
                    record(prop, b.name, lambda why=why: ("SKIP", 0, why, None))
                else:
                    record(prop, b.name, lambda b=b, prop=prop: checks[prop](ctx, b, max_examples, seed))
        elif prop == "rank":
            record(prop, "-", lambda: _check_rank(ctx, max_examples, seed))
        else:
            record(prop, "-", lambda: _check_integrity(ctx))
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def _edited_python_files(where: Path) -> list[str]:
    """Python files of the package whose sha256 differs from metadata.json (checked before any import)."""
    try:
        hashes = json.loads((where / "metadata.json").read_text()).get("sha256", {})
    except (OSError, ValueError):
        return []
    edited = []
    for fname, digest in sorted(hashes.items()):
        f = where / fname
        if fname.endswith(".py") and f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            edited.append(fname)
    return edited


def _edited_report(where: Path, edited, props, chosen, seed, max_examples, start, progress) -> VerifyReport:
    meta = json.loads((where / "metadata.json").read_text())
    try:
        signature = Signature.from_dict(meta["signature"]).describe()
    except (KeyError, TypeError, ValueError):
        signature = "?"
    report = VerifyReport(module=meta.get("name", where.name), path=str(where), signature=signature,
                          K=int(meta.get("K", 0)), seed=seed, max_examples=max_examples)
    if progress:
        progress(report.header())
    why = "not run: the package's Python code was edited, so verify does not import it"
    for prop in props:
        if prop == "integrity":
            result = PropertyResult(prop, "-", "FAIL", 0, f"{', '.join(edited)} do(es) not match the sha256 in "
                                    "metadata.json (edited?); regenerate with `optinv compile`", None, 0.0)
        else:
            backends = [b.name for b in chosen] if prop in ("invariance", "reference", "derivatives") else ["-"]
            for name in backends[:-1]:
                report.results.append(PropertyResult(prop, name, "SKIP", 0, why, None, 0.0))
            result = PropertyResult(prop, backends[-1], "SKIP", 0, why, None, 0.0)
        report.results.append(result)
    if progress:
        for r in report.results:
            progress(r)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


# -- command line ----------------------------------------------------------------------


def cmd_verify(args) -> int:
    def show(item) -> None:
        print(item.line() if isinstance(item, PropertyResult) else item, flush=True)

    report = verify_module(args.path, max_examples=args.max_examples, seed=args.seed, backends=args.backends,
                           properties=args.properties, progress=show)
    print(report.summary())
    if args.json:
        Path(args.json).write_text(report.to_json())
        print(f"wrote {args.json}")
    return 0 if report.ok else 1


def register(sub) -> None:
    from optinv.cli import seed_type

    p = sub.add_parser("verify", help="check a generated module with property-based tests (exit 0 only if all pass)",
                       description="Check a generated module: invariance, agreement with the engine's reference, "
                                   "derivatives, rank/completeness and integrity, on every available backend.")
    p.add_argument("path", help="a generated module's directory, or the name of a committed module (e.g. hop_l3_n4)")
    p.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES,
                   help=f"hypothesis examples per property and backend (default {DEFAULT_MAX_EXAMPLES})")
    p.add_argument("--seed", type=seed_type, default=0, help="seed of the examples; same seed, same run (default 0)")
    p.add_argument("--json", help="write a machine-readable report to this path")
    p.add_argument("--backends", help=f"comma-separated subset of {', '.join(BACKEND_NAMES)} "
                                      "or kinds c, torch, cuda (default: all; unavailable ones are SKIP)")
    p.add_argument("--properties", help=f"comma-separated subset of {', '.join(PROPERTIES)} (default: all)")
    p.set_defaults(func=cmd_verify)
