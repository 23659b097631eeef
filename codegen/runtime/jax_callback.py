"""The C kernels of a generated optinv module in JAX: ``jax.pure_callback`` with ``jax.custom_vjp``.

Committed modules import this module; ``optinv compile`` copies it verbatim into
the package it writes (as ``_jax_callback.py``), so it imports nothing from optinv.

The forward is the C kernel called back from XLA on the host; its VJP is the
C ``vjp`` kernel, whose own VJP is ``hvp`` (for x) and ``jvp`` (for g), so
``jax.grad`` works to second order (``grad`` of forces).  Reverse mode only:
``jvp``/``jacfwd`` and third derivatives are not available (a ``custom_vjp``
cannot be differentiated in forward mode).  ``jit`` and ``vmap`` work.
Each call crosses into Python once (``jax-c-callback`` in
benchmarks/jax_bench.py); :mod:`jax_ffi` runs the same kernels as XLA custom
calls through the FFI (faster: no Python per call) with the same
:func:`differentiable` wiring.
"""

from __future__ import annotations

import jax
import numpy as np


def bind(D: int, K: int, c_kernels):
    """``invariants(x)``: ``(..., D)`` -> ``(..., K)`` on the C kernels, differentiable twice in reverse mode."""

    def call(name: str, width: int, *args):
        lead = args[0].shape[:-1]

        def host(*arrays):
            flat = [np.asarray(a).reshape(-1, a.shape[-1]) for a in arrays]
            return c_kernels(name, *flat).reshape(*np.asarray(arrays[0]).shape[:-1], width)

        return jax.pure_callback(host, jax.ShapeDtypeStruct(lead + (width,), args[0].dtype), *args,
                                 vmap_method="broadcast_all")

    return differentiable(D, K, call)


def differentiable(D: int, K: int, call):
    """``invariants(x)`` on ``call(kernel, width, *arrays)`` (a kernel run from JAX), differentiable twice in reverse mode.

    Shared by this module and :mod:`jax_ffi` (which runs the kernels through the XLA FFI instead).
    """

    @jax.custom_vjp
    def vjp(x, g):
        return call("vjp", D, x, g)

    def vjp_fwd(x, g):
        return vjp(x, g), (x, g)

    def vjp_bwd(res, w):  # d<w, g.J(x)>: hvp for x, J w for g
        x, g = res
        return call("hvp", D, x, g, w), call("jvp", K, x, w)

    vjp.defvjp(vjp_fwd, vjp_bwd)

    @jax.custom_vjp
    def invariants(x):
        return call("forward", K, x)

    def fwd(x):
        return invariants(x), x

    def bwd(x, g):
        return (vjp(x, g),)

    invariants.defvjp(fwd, bwd)

    def checked(x):
        if getattr(x, "ndim", 0) < 1 or x.shape[-1] != D:
            raise ValueError(f"x: expected shape (..., {D}), got {tuple(getattr(x, 'shape', ()))}")
        return invariants(x)

    return checked
