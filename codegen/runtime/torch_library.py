"""A generated optinv module's kernels as PyTorch custom operators (``torch.library``), on CPU and CUDA.

Committed modules import this module; ``optinv compile`` copies it verbatim into
the package it writes (as ``_torch_library.py``), so it imports nothing from optinv.

Each package registers four operators under its own namespace
(``optinv_<name>_<hash of kernels.c>[_cu<hash of kernels.cu>]::forward``,
``vjp``, ``jvp``, ``hvp``), each with a kernel for the CPU and the CUDA
dispatch keys, a fake (meta) kernel for tracing, and autograd formulas written
with the same operators: the backward of ``forward`` is ``vjp``; of ``vjp`` it
is ``hvp`` (for x) and ``jvp`` (for g); of ``jvp`` it is ``hvp`` and ``vjp``.
So ``torch.compile(fullgraph=True)`` traces energy-and-forces without a graph
break (the operators are opaque nodes with known shapes, on any device), and
double backward works in eager mode.  ``hvp`` has no derivative: a third
derivative raises.

The device kernels here only check arguments (dtype, shape, one device for all
inputs) and make inputs contiguous; the kernels themselves run through the
``run(name, *tensors)`` callable the package injects: the torch adapter's
:class:`KernelRunner`, which runs the C kernels on CPU tensors (zero-copy
through NumPy) and the CUDA kernels on CUDA tensors (through CuPy on PyTorch's
current stream, zero-copy via DLPack), and refuses CUDA tensors by name when
the package was generated without the ``cuda`` target.

This is the Python registration path: the operators exist in a process that
imported the package.  A TorchScript model that calls them cannot be loaded
without our Python code (use the ``torch`` target's ``torch_module()``, or the
C++-registered ``torch_cpp`` operators, CPU only, for that).
"""

from __future__ import annotations

import torch

_DTYPES = (torch.float32, torch.float64)
#: Device types the operators have kernels for (the CPU and CUDA dispatch keys).
DEVICE_TYPES = ("cpu", "cuda")
#: namespace -> the registered operators (one registration per process and kernel sources).
_REGISTERED: dict[str, dict] = {}


def _same_device(name: str, t: torch.Tensor, x: torch.Tensor) -> None:
    if t.device != x.device:
        raise ValueError(f"{name}: expected a tensor on the device of x ({x.device}), got {t.device}; "
                         "move every input to one device")


def _check(name: str, t, width: int, like: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {t.dtype}")
    if t.ndim != 2 or t.shape[1] != width or (like is not None and t.shape[0] != like.shape[0]):
        raise ValueError(f"{name}: expected shape (n, {width}), got {tuple(t.shape)}")
    if like is not None:
        _same_device(name, t, like)
        if t.dtype != like.dtype:
            raise TypeError(f"{name}: expected the dtype of x ({like.dtype}), got {t.dtype}")
    if t.device.type not in DEVICE_TYPES:
        raise ValueError(f"{name}: the torch.library operators run on CPU or CUDA tensors, got {t.device}")
    return t


def register(namespace: str, D: int, K: int, run) -> dict:
    """Register (once) and return the operators of one module: ``{"forward": op, "vjp": ..., ...}``.

    ``run(name, *tensors)`` runs kernel ``name`` on checked, contiguous tensors of one
    device and returns the output tensor on that device (the torch adapter's ``KernelRunner``).
    """
    if namespace in _REGISTERED:
        return _REGISTERED[namespace]

    def call(name: str, *checked: torch.Tensor) -> torch.Tensor:
        return run(name, *(t.contiguous() for t in checked))

    # One body per operator, registered for both device keys: the runner picks the kernels by device.
    @torch.library.custom_op(f"{namespace}::forward", mutates_args=(), device_types=DEVICE_TYPES)
    def forward(x: torch.Tensor) -> torch.Tensor:
        return call("forward", _check("x", x, D))

    @torch.library.custom_op(f"{namespace}::vjp", mutates_args=(), device_types=DEVICE_TYPES)
    def vjp(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return call("vjp", _check("x", x, D), _check("g", g, K, x))

    @torch.library.custom_op(f"{namespace}::jvp", mutates_args=(), device_types=DEVICE_TYPES)
    def jvp(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return call("jvp", _check("x", x, D), _check("u", u, D, x))

    @torch.library.custom_op(f"{namespace}::hvp", mutates_args=(), device_types=DEVICE_TYPES)
    def hvp(x: torch.Tensor, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return call("hvp", _check("x", x, D), _check("g", g, K, x), _check("u", u, D, x))

    # fake kernels: shapes, dtypes and devices only (any device), for torch.compile / torch.export tracing
    def fake(width: int, x: torch.Tensor, **others: torch.Tensor) -> torch.Tensor:
        for name, t in others.items():
            _same_device(name, t, x)
        return x.new_empty((x.shape[0], width))

    forward.register_fake(lambda x: fake(K, x))
    vjp.register_fake(lambda x, g: fake(D, x, g=g))
    jvp.register_fake(lambda x, u: fake(K, x, u=u))
    hvp.register_fake(lambda x, g, u: fake(D, x, g=g, u=u))

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


def bind(namespace: str, D: int, K: int, run):
    """``invariants(x)``: ``(..., D)`` -> ``(..., K)`` through the registered ``forward`` operator."""
    ops = register(namespace, D, K, run)

    def invariants(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != D:
            raise ValueError(f"x: expected shape (..., {D}), got {tuple(x.shape)}")
        return ops["forward"](x.reshape(-1, D).contiguous()).reshape(*x.shape[:-1], K)

    return invariants, ops
