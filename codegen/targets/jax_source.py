"""Target ``jax``: the programs as straight-line ``jax.numpy`` (``jax_kernels.py``), exported as ``jax_invariants``.

The harness kind ``jax`` runs the printed kernels (forward, VJP, JVP, HVP)
eagerly (no ``jit``: the harness changes shapes every example, and compiling
would dominate); float64 under ``jax.enable_x64``.  :func:`call_jax_autodiff`
differentiates the printed forward with ``jax.vjp``/``jax.jvp`` as a JAX user
does; it is not a registered kind because eager autodiff of the largest modules
costs seconds a call (tests/test_jax_target.py runs it on mid-size modules).
The kind ``jax-c`` runs the C kernel from JAX (``jax_c_invariants``: a
``pure_callback`` with ``custom_vjp``, :mod:`optinv.codegen.runtime.jax_callback`)
in reverse mode.
"""

from __future__ import annotations

import importlib.util

import json

from optinv.codegen.targets import c
from optinv.codegen.targets.base import Target, backends_for
from optinv.codegen.targets.python_source import ColumnPrinter, kernel_module


def jax_unavailable() -> str | None:
    return None if importlib.util.find_spec("jax") is not None else "jax is not importable (pip install 'optinv[jax]')"


def jax_kernels(package):
    return kernel_module(package, "jax_kernels", "jax")


def _run(arrays, fn):
    import jax
    import numpy as np

    with jax.enable_x64(arrays[0].dtype == np.float64):
        return np.asarray(fn(*(jax.numpy.asarray(a) for a in arrays)))


def call_jax_source(package, op: str, arrays):
    return _run(arrays, getattr(jax_kernels(package), op))


def call_jax_autodiff(package, op: str, arrays):
    import jax

    f = jax_kernels(package).forward

    def run(x, *rest):
        if op == "forward":
            return f(x)
        if op == "vjp":
            return jax.vjp(f, x)[1](rest[0])[0]
        if op == "jvp":
            return jax.jvp(f, (x,), (rest[0],))[1]
        g, u = rest  # hvp: the JVP of x -> g . J(x) along u
        return jax.jvp(lambda y: jax.vjp(f, y)[1](g)[0], (x,), (u,))[1]

    return _run(arrays, run)


def reverse_mode_caller(attribute: str):
    """Every op through reverse mode of the package's ``attribute`` (the C kernel from JAX, a ``custom_vjp``).

    VJP by ``jax.vjp``; JVP as the VJP of the VJP with respect to ``g``; HVP as
    the VJP of the VJP with respect to ``x`` (forward mode is not available).
    """

    def call(package, op: str, arrays):
        import jax

        f = getattr(package, attribute)

        def run(x, *rest):
            if op == "forward":
                return f(x)
            if op == "vjp":
                return jax.vjp(f, x)[1](rest[0])[0]
            if op == "jvp":  # J u = d/dg <g.J, u>
                g0 = jax.numpy.zeros(x.shape[:-1] + (package.K,), x.dtype)
                return jax.vjp(lambda g: jax.vjp(f, x)[1](g)[0], g0)[1](rest[0])[0]
            g, u = rest
            return jax.vjp(lambda y: jax.vjp(f, y)[1](g)[0], x)[1](u)[0]

        return _run(arrays, run)

    return call


#: ``jax_c_invariants``: the C kernel called back from XLA (``pure_callback``).
call_jax_c = reverse_mode_caller("jax_c_invariants")


class JaxTarget(Target):
    def init_section(self, env, common: dict) -> str:
        bundled = json.loads(common["request"]).get("bundle_runtime", True)
        return env.get_template(self.init_template).render(common, target=self, bundle_runtime=bundled,
                                                           c_kernels=c.TARGET.attribute)


TARGET = JaxTarget(
    name="jax",
    printer=ColumnPrinter(),
    templates={"jax_kernels.py": "jax_kernels.py.j2"},
    init_template="jax_init.py.j2",
    backends=backends_for("jax", call_jax_source, jax_unavailable)
    + backends_for("jax-c", call_jax_c, jax_unavailable),
)
