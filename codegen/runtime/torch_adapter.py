"""PyTorch adapter of a generated optinv module (autograd with double backward).

Committed modules import this module; ``optinv compile`` copies it verbatim into
the package it writes (as ``_torch.py``), so it imports nothing from optinv.  A
package binds it to its own kernels with :func:`bind`.

CPU tensors run on the C kernels (zero-copy through NumPy), CUDA tensors on the
CUDA kernels through CuPy on PyTorch's current stream (zero-copy via DLPack).
The backward of the forward is the VJP kernel; the backward of the VJP uses the
JVP and the g-weighted HVP kernels, so losses on forces can be trained
(``torch.autograd.gradcheck`` and ``gradgradcheck`` pass).

Every kernel call is itself an autograd node, so no derivative is ever taken
through a value silently treated as constant.  The JVP's derivatives are the
HVP and VJP kernels; the HVP's derivative along its direction ``u`` is the HVP
again, and in ``g`` it is ``u . H_k . w`` (K more HVP rows); its derivative in
``x`` needs third derivatives of the invariants, which no kernel provides, so
asking for it raises :class:`ThirdDerivativeError` (every time, whatever the
graph looks like).
"""

from __future__ import annotations

try:
    import torch
except ModuleNotFoundError as exc:  # the adapter is optional: say how to get it
    if exc.name != "torch":
        raise
    raise ModuleNotFoundError("PyTorch is not installed, and the torch adapter (torch_invariants, Invariants, "
                              "HopInvariantLayer) needs it: pip install 'optinv[torch]' (or pip install torch)",
                              name="torch") from None


_DTYPES = (torch.float32, torch.float64)


def _check(name: str, t, width: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {t.dtype}")
    if t.ndim != 2 or t.shape[1] != width:
        raise ValueError(f"{name}: expected shape (n, {width}), got {tuple(t.shape)}")
    return t


class ThirdDerivativeError(RuntimeError):
    """A derivative of order three in ``x`` was requested; the kernels provide orders one and two."""


THIRD_DERIVATIVE_MESSAGE = (
    "third derivatives of the invariants are not available from this module's kernels (they provide forward, VJP, "
    "JVP and the g-weighted HVP: derivatives up to order two); differentiate at most twice, or use a target "
    "that emits plain torch code")


class KernelRunner:
    """Runs one module's kernels on torch tensors: the C kernels on CPU, the CUDA kernels (if any) on GPU.

    The one owner of that device dispatch: the autograd functions here and the ``torch.library``
    operators (:mod:`torch_library`, whose package hands them one of these) both run through it.
    """

    def __init__(self, c_kernels, cuda_kernels):
        self.c = c_kernels
        self.cuda = cuda_kernels

    def __call__(self, name: str, *tensors: torch.Tensor) -> torch.Tensor:
        # Kernels see plain data: DLPack and .numpy() refuse tensors that require grad.
        tensors = tuple(t.detach() for t in tensors)
        x = tensors[0]
        if x.device.type == "cpu":
            return torch.from_numpy(self.c(name, *(t.numpy() for t in tensors)))
        if x.device.type == "cuda":
            if self.cuda is None:
                raise ValueError("x: on a CUDA device, but this package was generated without the 'cuda' target")
            import cupy

            with cupy.cuda.Device(x.device.index):
                stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream)
                out = self.cuda(name, *(cupy.from_dlpack(t) for t in tensors), stream=stream)
            return torch.from_dlpack(out)
        raise ValueError(f"x: device {x.device} is not supported (cpu or cuda)")


class _Forward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, run):
        ctx.save_for_backward(x)
        ctx.run = run
        return run("forward", x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return _VJP.apply(x, g.contiguous(), ctx.run), None


class _VJP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, g, run):
        ctx.save_for_backward(x, g)
        ctx.run = run
        return run("vjp", x, g)

    @staticmethod
    def backward(ctx, w):
        x, g = ctx.saved_tensors
        w = w.contiguous()
        # autograd nodes, not raw kernel calls: their own derivatives are then right or refused
        grad_x = _HVP.apply(x, g, w, ctx.run) if ctx.needs_input_grad[0] else None
        grad_g = _JVP.apply(x, w, ctx.run) if ctx.needs_input_grad[1] else None
        return grad_x, grad_g, None


class _JVP(torch.autograd.Function):
    """``J(x) u``: its derivative in ``x`` is the g-weighted HVP, in ``u`` the VJP."""

    @staticmethod
    def forward(ctx, x, u, run):
        ctx.save_for_backward(x, u)
        ctx.run = run
        return run("jvp", x, u)

    @staticmethod
    def backward(ctx, gbar):
        x, u = ctx.saved_tensors
        gbar = gbar.contiguous()
        grad_x = _HVP.apply(x, gbar, u, ctx.run) if ctx.needs_input_grad[0] else None
        grad_u = _VJP.apply(x, gbar, ctx.run) if ctx.needs_input_grad[1] else None
        return grad_x, grad_u, None


class _HVP(torch.autograd.Function):
    """``sum_k g_k H_k(x) u``: linear in ``g`` and ``u``; its derivative in ``x`` is a third derivative of
    the invariants, which is refused."""

    @staticmethod
    def forward(ctx, x, g, u, run):
        ctx.save_for_backward(x, g, u)
        ctx.run = run
        return run("hvp", x, g, u)

    @staticmethod
    def backward(ctx, wbar):
        if ctx.needs_input_grad[0]:
            raise ThirdDerivativeError(THIRD_DERIVATIVE_MESSAGE)
        x, g, u = ctx.saved_tensors
        wbar = wbar.contiguous()
        grad_g = grad_u = None
        if ctx.needs_input_grad[1]:  # d/dg_k = u . H_k . wbar: the HVP with g = e_k, one batch of n * K rows
            n, K = g.shape
            eye = torch.eye(K, dtype=g.dtype, device=g.device).repeat(n, 1)
            h = _HVP.apply(x.repeat_interleave(K, 0), eye, u.repeat_interleave(K, 0), ctx.run)
            grad_g = (h.reshape(n, K, -1) * wbar[:, None, :]).sum(-1)
        if ctx.needs_input_grad[2]:
            grad_u = _HVP.apply(x, g, wbar, ctx.run)
        return None, grad_g, grad_u, None




def bind(D: int, K: int, metadata: dict, c_kernels, cuda_kernels) -> dict:
    """The adapter of one module: ``torch_invariants``, ``Invariants`` and ``HopInvariantLayer``."""
    run = KernelRunner(c_kernels, cuda_kernels)

    def torch_invariants(x: torch.Tensor) -> torch.Tensor:
        """Invariants ``(..., K)`` of ``x`` ``(..., D)``, differentiable twice."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != D:
            raise ValueError(f"x: expected shape (..., {D}), got {tuple(x.shape)}")
        flat = _check("x", x.reshape(-1, D), D)
        if flat.device.type not in ("cpu", "cuda"):
            raise ValueError(f"x: device {flat.device} is not supported (cpu or cuda)")
        return _Forward.apply(x.reshape(-1, D).contiguous(), run).reshape(*x.shape[:-1], K)

    class Invariants(torch.nn.Module):
        """``nn.Module`` computing the invariants of ``(..., D)`` inputs."""

        n_features = K

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch_invariants(x)

    class HopInvariantLayer(Invariants):
        """In place of hippynn's HIP-HOP-NN invariant layer (``HopInvariantLayer(n_max, l_max)``).

        Takes tensor features ``(..., D)`` in hippynn's coefficient layout (s, v, q,
        t, ... concatenated) and returns ``(..., K)`` invariants.  ``n_max`` and
        ``l_max`` are optional and, when given, must match what this module was
        generated for.  The shapes match hippynn's layer; the invariants are this
        module's (the same 13 as hippynn only for ``hippynn_default``), so weights
        trained with hippynn's own layer do not carry over, and ``n_invariants``
        can differ from hippynn's count (a maximal set can be larger than hippynn's).
        """

        def __init__(self, n_max: int | None = None, l_max: int | None = None):
            super().__init__()
            request = metadata["request"]
            self.l_max = request.get("l_max", max(t["rank"] for t in metadata["signature"]["tensors"]))
            self.n_max = request.get("n_max", max(metadata["degrees"]))
            if l_max is not None and l_max != self.l_max:
                raise ValueError(f"l_max: this module was generated for l_max={self.l_max}, got {l_max}")
            if n_max is not None and n_max != self.n_max:
                raise ValueError(f"n_max: this module was generated for n_max={self.n_max}, got {n_max}")
            self.n_invariants = K

        def extra_repr(self) -> str:
            return f"n_max={self.n_max}, l_max={self.l_max}, D={D}, K={K}"

    return {"torch_invariants": torch_invariants, "Invariants": Invariants, "HopInvariantLayer": HopInvariantLayer}
