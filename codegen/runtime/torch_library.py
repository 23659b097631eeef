"""The C kernels of a generated optinv module as PyTorch custom operators (``torch.library``).

Committed modules import this module; ``optinv compile`` copies it verbatim into
the package it writes (as ``_torch_library.py``), so it imports nothing from optinv.

Each package registers four operators under its own namespace
(``optinv_<name>_<hash of kernels.c>::forward``, ``vjp``, ``jvp``, ``hvp``), each
with a fake (meta) kernel for tracing, and autograd formulas written with the
same operators: the backward of ``forward`` is ``vjp``; of ``vjp`` it is
``hvp`` (for x) and ``jvp`` (for g); of ``jvp`` it is ``hvp`` and ``vjp``.  So
``torch.compile(fullgraph=True)`` traces energy-and-forces without a graph
break (the operators are opaque nodes with known shapes), and double backward
works in eager mode.  ``hvp`` has no derivative: a third derivative raises.

This is the Python registration path: the operators exist in a process that
imported the package.  A TorchScript model that calls them cannot be loaded
without our Python code (use the ``torch`` target's ``torch_module()`` for
that).  CPU tensors only.
"""

from __future__ import annotations

import torch

_DTYPES = (torch.float32, torch.float64)
#: namespace -> the registered operators (one registration per process and kernels.c content).
_REGISTERED: dict[str, dict] = {}


def _check(name: str, t, width: int, like: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {t.dtype}")
    if t.ndim != 2 or t.shape[1] != width or (like is not None and t.shape[0] != like.shape[0]):
        raise ValueError(f"{name}: expected shape (n, {width}), got {tuple(t.shape)}")
    if t.device.type != "cpu":
        raise ValueError(f"{name}: the torch.library operators run the C kernels on CPU tensors, got {t.device}")
    return t


def register(namespace: str, D: int, K: int, c_kernels) -> dict:
    """Register (once) and return the operators of one module: ``{"forward": op, "vjp": ..., ...}``."""
    if namespace in _REGISTERED:
        return _REGISTERED[namespace]

    def run(name: str, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(c_kernels(name, *(t.detach().contiguous().numpy() for t in tensors)))

    @torch.library.custom_op(f"{namespace}::forward", mutates_args=())
    def forward(x: torch.Tensor) -> torch.Tensor:
        return run("forward", _check("x", x, D))

    @torch.library.custom_op(f"{namespace}::vjp", mutates_args=())
    def vjp(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return run("vjp", _check("x", x, D), _check("g", g, K, x))

    @torch.library.custom_op(f"{namespace}::jvp", mutates_args=())
    def jvp(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return run("jvp", _check("x", x, D), _check("u", u, D, x))

    @torch.library.custom_op(f"{namespace}::hvp", mutates_args=())
    def hvp(x: torch.Tensor, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return run("hvp", _check("x", x, D), _check("g", g, K, x), _check("u", u, D, x))

    # fake kernels: shapes and dtypes only, for torch.compile / torch.export tracing
    forward.register_fake(lambda x: x.new_empty((x.shape[0], K)))
    vjp.register_fake(lambda x, g: x.new_empty((x.shape[0], D)))
    jvp.register_fake(lambda x, u: x.new_empty((x.shape[0], K)))
    hvp.register_fake(lambda x, g, u: x.new_empty((x.shape[0], D)))

    def save_inputs(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def forward_backward(ctx, w):
        (x,) = ctx.saved_tensors
        return vjp(x, w.contiguous())

    def vjp_backward(ctx, w):  # d<w, g.J(x)>: hvp for x, J w for g
        x, g = ctx.saved_tensors
        w = w.contiguous()
        return (hvp(x, g, w) if ctx.needs_input_grad[0] else None,
                jvp(x, w) if ctx.needs_input_grad[1] else None)

    def jvp_backward(ctx, w):  # d<w, J(x) u>: hvp(x, w, u) for x, w.J for u
        x, u = ctx.saved_tensors
        w = w.contiguous()
        return (hvp(x, w, u) if ctx.needs_input_grad[0] else None,
                vjp(x, w) if ctx.needs_input_grad[1] else None)

    forward.register_autograd(forward_backward, setup_context=save_inputs)
    vjp.register_autograd(vjp_backward, setup_context=save_inputs)
    jvp.register_autograd(jvp_backward, setup_context=save_inputs)
    ops = {"forward": forward, "vjp": vjp, "jvp": jvp, "hvp": hvp}
    _REGISTERED[namespace] = ops
    return ops


def bind(namespace: str, D: int, K: int, c_kernels):
    """``invariants(x)``: ``(..., D)`` -> ``(..., K)`` through the registered ``forward`` operator."""
    ops = register(namespace, D, K, c_kernels)

    def invariants(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != D:
            raise ValueError(f"x: expected shape (..., {D}), got {tuple(x.shape)}")
        return ops["forward"](x.reshape(-1, D).contiguous()).reshape(*x.shape[:-1], K)

    return invariants, ops
