"""Properties 1-4 of ``optinv verify``: invariance, reference, derivatives, rank.

Each check runs under hypothesis (:func:`run_property`) and returns
``(status, examples, message, counterexample)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import optinv.testing as ot
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import PRIME
from optinv.algebra.rank import float_rank, orbit_bound
from optinv.algebra.select import check_invariants, select_basis
from optinv.algebra.signature import Signature
from optinv.algebra.strata import float_point_and_tangent, parse_strata_spec, stratum_report
from optinv.codegen.request import Request
from optinv.codegen.targets.base import Backend
from optinv.testing import as_graphs, magnitude_bound, reflection_signs
from optinv.verify.backends import all_backends, float64_twin
from optinv.verify.oracle import (INVARIANCE_RTOL, RTOL, absolute_floor, coefficient_scales, first_bad,
                                  floored_magnitude, input_floor, magnitudes, module_flops, polynomial_degree)
from optinv.verify.stencils import Stencil

PROPERTIES = ("invariance", "reference", "derivatives", "rank", "integrity")
DEFAULT_MAX_EXAMPLES = 100


def parse_properties(spec) -> list[str]:
    if spec is None:
        return list(PROPERTIES)
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = [s for s in items if s not in PROPERTIES]
    if unknown or not items:
        raise OptinvError(f"--properties: expected some of {', '.join(PROPERTIES)}, got {', '.join(unknown) or 'none'}")
    return [p for p in PROPERTIES if p in items]


# -- the context every check shares ----------------------------------------------------


class Context:
    """What every check needs: the module, its metadata, signature, graphs, parities and degree."""

    def __init__(self, path: Path, module):
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
        try:
            self.request = Request.from_dict(self.meta.get("request"))
        except OptinvError:
            self.request = None  # the integrity property reports a request it cannot regenerate from
        self.parities = reflection_signs(self.graphs, self.sig)
        self.degree = polynomial_degree(self.graphs)
        self.columns = []
        for spec, sl in zip(self.sig.tensors, self.sig.slices().values()):
            self.columns += [f"{spec.name}[{i}]" for i in range(sl.stop - sl.start)]

    def magnitude(self, y: np.ndarray) -> np.ndarray:
        return magnitude_bound(self.graphs, self.sig, y)

    def output(self, k: int) -> str:
        return f"output {k} ({self.einsums[k]})"


# -- hypothesis runner -----------------------------------------------------------------


def _hypothesis_strategies():
    # imported on first use: `import optinv` (and optinv.testing) work without loading hypothesis
    from hypothesis import strategies

    return strategies


def run_property(body, strategies: dict, max_examples: int, seed: int, summarise):
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


def check_invariance(ctx: Context, backend: Backend, max_examples: int, seed: int):
    fn = lambda rows: backend(ctx.module, "forward", rows)  # noqa: E731
    rtol = INVARIANCE_RTOL[backend.dtype]
    # the rotated rows are rounded to the backend's dtype: the oracle's floors cover that rounding
    scale = floored_magnitude(ctx.graphs, ctx.sig, backend.dtype)
    atol = absolute_floor(backend.dtype, module_flops(ctx.module, "forward"))

    def body(x, g):
        xk = np.asarray(x, dtype=backend.dtype)
        ot.assert_invariant(fn, ctx.sig, xk, g, rtol=rtol, atol=atol, parities=ctx.parities,
                            scale=scale, labels=ctx.einsums)

    status, n, message, ce = run_property(
        body, {"x": ot.rows(ctx.sig, degenerate=True, max_rows=4), "g": ot.orthogonal()},
        max_examples, seed, lambda d: {"x": d.get("x"), "g": d.get("g"), "det": float(np.linalg.det(d["g"]))
                                       if "g" in d else None})
    if status == "PASS":
        pseudo = int(np.sum(ctx.parities < 0))
        message = (f"rotations and reflections (det -1), {pseudo} output{'s' if pseudo != 1 else ''} changing sign "
                   f"under reflections; rtol {rtol:g} of the magnitude bound")
    return status, n, message, ce


# -- 2. reference -----------------------------------------------------------------------


def check_reference(ctx: Context, backend: Backend, max_examples: int, seed: int):
    fn = lambda rows: backend(ctx.module, "forward", rows)  # noqa: E731
    rtol = RTOL[backend.dtype]
    atol = absolute_floor(backend.dtype, module_flops(ctx.module, "forward"))

    def body(x):
        xk = np.asarray(x, dtype=backend.dtype)  # the reference evaluates the rounded rows in float64
        ot.assert_matches_reference(fn, ctx.graphs, ctx.sig, xk, rtol=rtol, atol=atol)


    status, n, message, ce = run_property(
        body, {"x": ot.rows(ctx.sig, degenerate=True, max_rows=6)}, max_examples, seed, lambda d: {"x": d.get("x")})
    if status == "PASS":
        message = (f"engine evaluator of the {ctx.K} einsum strings on random, zero, one-tensor, huge, tiny and "
                   f"mixed-scale rows; rtol {rtol:g} of the magnitude bound")
    return status, n, message, ce



# -- 3. derivatives ---------------------------------------------------------------------


def check_derivatives(ctx: Context, backend: Backend, max_examples: int, seed: int):
    exact = float64_twin(backend)  # finite differences of the module's own float64 forward / VJP
    fwd64 = lambda rows: exact(ctx.module, "forward", rows)  # noqa: E731
    stencil_f = Stencil(ctx.degree)
    stencil_g = Stencil(max(ctx.degree - 1, 1))
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
        s = coefficient_scales(ctx.sig, x)
        g = backend.cast(rng.normal(size=(N, K)))
        u = backend.cast(rng.normal(size=(N, D)) * s)
        col = lambda d: f"column {d} ({ctx.columns[d]})"  # noqa: E731

        # the oracle's floors: magnitudes at |x| + input_floor, plus flops * smallest_subnormal
        y = np.abs(np.asarray(x, dtype=np.float64)) + input_floor(backend.dtype)
        base, Qs, Qu, Qus = magnitudes(ctx.graphs, ctx.sig, y, u, s)
        atol = {op: absolute_floor(backend.dtype, module_flops(ctx.module, op)) for op in ("vjp", "jvp", "hvp")}
        dQ = np.maximum(Qs - base[:, None, :], 0.0) / s[:, :, None]  # >= dQ_k/dy_d at |x|
        dQu = np.maximum(Qus - Qu[:, None, :], 0.0) / s[:, :, None]  # >= dQ_k/dy_d at |x| + |u|

        # VJP against the Jacobian by exact finite differences of the forward along each coordinate
        eye = np.eye(D)
        xs = np.repeat(x, D, axis=0)
        vs = (eye[None, :, :] * s[:, :, None]).reshape(N * D, D)
        jac = stencil_f.derivative(fwd64, xs, vs).reshape(N, D, K) / s[:, :, None]  # (N, D, K)
        ref = np.einsum("nk,ndk->nd", g, jac)
        ours = backend(ctx.module, "vjp", x, g)
        tol = (atol["vjp"] + r_kernel * np.einsum("nk,ndk->nd", np.abs(g), dQ)
               + r64 * stencil_f.abs_sum * np.einsum("nk,ndk->nd", np.abs(g), Qs) / s)
        bad = first_bad(ours, ref, tol)
        if bad:
            fail("vjp", col, *bad, ours, ref, tol, x)

        # JVP against finite differences of the forward along u
        ref = stencil_f.derivative(fwd64, x, u)
        ours = backend(ctx.module, "jvp", x, u)
        tol = atol["jvp"] + r_kernel * np.maximum(Qu - base, 0.0) + r64 * stencil_f.abs_sum * Qu
        bad = first_bad(ours, ref, tol)
        if bad:
            fail("jvp", ctx.output, *bad, ours, ref, tol, x)

        # HVP against finite differences of the module's float64 VJP along u
        vjp64 = lambda rows: exact(ctx.module, "vjp", rows, np.tile(g, (len(rows) // N, 1)))  # noqa: E731
        ref = stencil_g.derivative(vjp64, x, u)
        ours = backend(ctx.module, "hvp", x, g, u)
        tol = atol["hvp"] + (r_kernel + r64 * stencil_g.abs_sum) * np.einsum("nk,ndk->nd", np.abs(g), dQu)

        bad = first_bad(ours, ref, tol)
        if bad:
            fail("hvp", col, *bad, ours, ref, tol, x)

    status, n, message, ce = run_property(
        body, {"x": ot.rows(ctx.sig, degenerate=True, max_rows=4), "seed_gu": _hypothesis_strategies().integers(0, 2**32 - 1)},
        max_examples, seed, lambda d: {"x": d.get("x"), "seed_gu": d.get("seed_gu")})
    if status == "PASS":
        message = (f"vjp and jvp vs exact {2 * stencil_f.m}-point differences of the float64 forward "
                   f"(degree {ctx.degree}), hvp vs {2 * stencil_g.m}-point differences of the float64 vjp; "
                   f"rounding-bounded tolerance")
    elif ce is not None and ce.get("seed_gu") is not None:
        message += " (g, u = normal draws of numpy.random.default_rng(seed_gu))"
    return status, n, message, ce


# -- 4. rank ----------------------------------------------------------------------------


def check_rank(ctx: Context, max_examples: int, seed: int):
    c64 = next(b for b in all_backends() if b.name == "c-f64")
    basis = ctx.meta.get("basis", {})
    claimed_complete = bool(basis.get("complete", False))
    claimed_bound = basis.get("bound")
    K, D = ctx.K, ctx.D
    # a flexible module keeps outputs that are generically dependent (they carry rank on strata):
    # its generic rank is the certified one, not K
    flexible = ctx.request is not None and ctx.request.flexible
    expected = int(basis.get("rank", K)) if flexible else K
    ranks = []

    def body(seed_x):
        x = np.random.default_rng(seed_x).normal(size=(1, D))
        j_vjp = c64(ctx.module, "vjp", np.repeat(x, K, axis=0), np.eye(K))  # row k: dI_k/dx
        j_jvp = c64(ctx.module, "jvp", np.repeat(x, D, axis=0), np.eye(D)).T  # column d: dI/dx_d
        scale = np.abs(j_vjp).max(axis=1, keepdims=True) + np.abs(j_jvp).max(axis=1, keepdims=True)
        bad = first_bad(j_vjp, j_jvp, 1e-10 * scale)
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
        if rank < expected:
            # the first output that does not raise the rank
            k = next(k for k in range(1, K + 1) if float_rank(j_vjp[:k] / norms[:k])[0] < k) - 1
            raise AssertionError(
                f"Jacobian rank {rank} < {K} outputs at a random point: outputs not functionally independent; "
                f"{ctx.output(k)} depends on the earlier ones (singular values ratio {sv[-1] / sv[0]:.2e})")

    status, n, message, ce = run_property(body, {"seed_x": _hypothesis_strategies().integers(0, 2**32 - 1)}, max_examples, seed,
                                           lambda d: {"seed_x": d.get("seed_x")})
    if status == "FAIL":
        if ce is not None:
            message += " (x = numpy.random.default_rng(seed_x).normal(size=(1, D)))"
        return status, n, message, ce
    rank = min(ranks) if ranks else K
    check = check_invariants(ctx.einsums, ctx.sig, seed=seed)
    bound = orbit_bound(ctx.sig, seed).bound
    problems = []
    if check.rank != expected:
        dependent = [k for k, e in enumerate(check.entries) if not e.independent]
        problems.append(f"exact rank mod {PRIME} is {check.rank} < {expected}: dependent "
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
    n_max = ctx.request.n_max if ctx.request is not None else None
    if n_max is not None:
        # a module requested by n_max promises the maximal rank reachable with n_max factors
        best = select_basis(ctx.sig, int(n_max), seed=seed).rank
        if rank < best:
            problems.append(f"the request (n_max={n_max}) promises the maximal rank {best} reachable with {n_max} "
                            f"factors, but the outputs reach only {rank}: an invariant is missing")
    strata_note = ""
    if basis.get("strata"):
        strata_problems, strata_note = _check_strata(ctx, c64, basis, seed)
        problems += strata_problems
    if problems:
        return "FAIL", n, "; ".join(problems), None
    state = "complete" if rank == bound else "not complete, as the metadata states"
    outputs = f"{K} outputs" if expected == K else f"{expected} of {K} outputs independent (flexible)"
    return "PASS", n, (f"Jacobian rank {rank} = {outputs} at random points (vjp = jvp^T); bound {bound} "
                       f"({state}); exact rank mod {PRIME} {check.rank}{strata_note}"), None


def _check_strata(ctx: Context, c64: Backend, basis: dict, seed: int) -> tuple[list[str], str]:
    """Ranks on the degenerate strata: the engine's exact ones and the kernels' own, against the metadata.

    The engine recomputes every stratum's rank and maximum (exactly, mod p)
    from the einsum strings; the kernels' Jacobian (from the VJP) restricted
    to each stratum's tangent must have the recorded rank at float points of
    the stratum (largest of three points: a rank is generic, ill-conditioning
    is not).
    """
    recorded = {s["name"]: s for s in basis["strata"]}
    strata = parse_strata_spec(ctx.request.strata if ctx.request is not None else None, ctx.sig)
    n_max = int(basis.get("strata_n_max") or max(g.degree for g in ctx.graphs))
    exact = stratum_report(ctx.graphs, ctx.sig, n_max, strata, seed)
    problems = []
    if sorted(recorded) != sorted(s.name for s in exact):
        return [f"metadata lists strata {sorted(recorded)} but the engine finds {sorted(s.name for s in exact)}"], ""
    rng = np.random.default_rng(seed + 31)
    degrees = np.array([g.degree for g in ctx.graphs])
    for stratum, ranks in zip(strata, exact):
        rec = recorded[ranks.name]
        if (rec.get("rank"), rec.get("max_rank"), rec.get("bound")) != (ranks.rank, ranks.max_rank, ranks.bound):
            problems.append(f"stratum {ranks.name}: metadata says rank {rec.get('rank')} / max {rec.get('max_rank')} "
                            f"/ bound {rec.get('bound')}, the engine finds {ranks.rank} / {ranks.max_rank} / "
                            f"{ranks.bound}")
            continue
        best = 0
        for _ in range(3):
            x, tangent = float_point_and_tangent(stratum, ctx.sig, rng)
            jac = c64(ctx.module, "vjp", np.repeat(x[None], ctx.K, axis=0), np.eye(ctx.K))
            # a degree-d output's gradient scales as |x|^(d-1); rows scaled so, not by their own norms
            scaled = jac / np.linalg.norm(x) ** (degrees[:, None] - 1) @ (tangent / np.abs(tangent).max()).T
            best = max(best, float_rank(scaled, rtol=1e-11)[0])
            if best == ranks.rank:
                break
        if best != ranks.rank:
            problems.append(f"stratum {ranks.name}: the kernels' Jacobian has rank {best} there, the engine's "
                            f"exact rank is {ranks.rank}")
    at_max = sum(s.rank == s.max_rank for s in exact)
    return problems, f"; strata: {at_max} of {len(exact)} at the maximum with {n_max} factors, kernels agree"
