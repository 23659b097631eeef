"""The benchmark's methods: one registry entry per way a user computes invariants.

Every entry is timed under the same rule: **outputs are allocated per call**, as
users call them (``forward(x)``, ``torch_invariants(x)``, ``calc_invariants(...)``).
Methods whose API takes preallocated outputs also get a separate ``+out``
variant (``forward(x, out=buf)``), reported apart and labelled as such.

An entry says where it applies and builds a :class:`Prepared` for given rows:
zero-argument callables for ``forward`` and ``forward+backward`` (forward, then
the vector-Jacobian product with a fixed random cotangent ``g``), plus the
forward values for the correctness check.  A new target (a torch or JAX
printer, a custom op, ...) plugs in with one :func:`register` call::

    @register("my-target", "what it is", kind="torch", flops="optinv")
    def _my_target(ctx):            # ctx: Context (l_max, n_max, signature, basis, dtype)
        if not_available:
            raise Unavailable("why")
        return lambda x, g: Prepared(forward=..., forward_backward=..., values=...)

``kind`` says how threads are set (``numpy``: the C kernel's ``threads=``;
``torch``: ``torch.set_num_threads``, plus the C kernel when torch calls it) and
which arrays the callables receive (NumPy arrays or torch tensors).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")


class Unavailable(RuntimeError):
    """This method cannot run here (missing package, unsupported (l_max, n_max), ...)."""


@dataclass
class Context:
    l_max: int
    n_max: int
    signature: object
    basis: object
    dtype: str

    @property
    def pair(self) -> tuple[int, int]:
        return self.l_max, self.n_max


@dataclass
class Prepared:
    forward: Callable[[], object]
    forward_backward: Callable[[], object]
    values: Callable[[], np.ndarray] | None = None


@dataclass
class Method:
    name: str
    description: str
    kind: str  # "numpy" or "torch"
    build: Callable  # Context -> (n_out, flops (fwd, vjp) or (None, None), prepare(x_np, g_np) -> Prepared)
    invariants: str = "optinv"  # whose invariants it computes: "optinv" (the module's basis) or "hippynn"
    out_variant: bool = False  # the ``+out`` variant (preallocated outputs)
    threads: tuple[int, ...] = (1, 2)
    notes: list[str] = field(default_factory=list)


REGISTRY: dict[str, Method] = {}


def register(name, description, kind="numpy", invariants="optinv", out_variant=False, threads=(1, 2)):
    def deco(build):
        REGISTRY[name] = Method(name, description, kind, build, invariants, out_variant, tuple(threads))
        return build

    return deco


# -- threads -------------------------------------------------------------------------------------


def set_threads(t: int) -> None:
    """One thread count for everything that threads: our C kernels (via OMP and each module), torch."""
    try:
        import torch

        torch.set_num_threads(int(t))
    except ImportError:  # pragma: no cover - torch is in the bench extra
        pass
    for mod in _LOADED_MODULES:
        mod.set_num_threads(int(t))


_LOADED_MODULES: list = []


def _module(name: str, basis_or_einsums, sig):
    from benchmarks.peers import generated as gen_peer

    try:
        mod = gen_peer.load_generated(name, basis_or_einsums, sig)
    except gen_peer.Unavailable as exc:
        raise Unavailable(str(exc)) from exc
    if mod not in _LOADED_MODULES:
        _LOADED_MODULES.append(mod)
    return mod


def _module_flops(mod):
    from benchmarks.peers import generated as gen_peer

    return gen_peer.metadata_flops(gen_peer.module_metadata(mod))


def _torch():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch
    except ImportError as exc:
        raise Unavailable(f"torch is not importable ({exc})") from exc
    return torch


# -- the generated C kernel, NumPy API ---------------------------------------------------------------


def _numpy_api(mod, n_out, flops, out: bool):
    def prepare(x, g):
        if out:
            # buffers as a caller reusing our outputs holds them: 64-byte aligned, so large outputs are
            # streamed (np.empty's 16-byte alignment would fall back to plain stores: 0.8x at N=2e6)
            buf, gbuf = mod.forward(x), mod.vjp(x, g)
            fwd = lambda: mod.forward(x, out=buf)  # noqa: E731

            def fwd_bwd():
                mod.forward(x, out=buf)
                return mod.vjp(x, g, out=gbuf)
        else:
            fwd = lambda: mod.forward(x)  # noqa: E731

            def fwd_bwd():
                mod.forward(x)
                return mod.vjp(x, g)

        return Prepared(fwd, fwd_bwd, lambda: np.asarray(mod.forward(x)))

    return n_out, flops, prepare


def _hop(ctx):
    return _module(f"hop_l{ctx.l_max}_n{ctx.n_max}", ctx.basis, ctx.signature)


@register("optinv", "generated C kernel, NumPy API: forward(x), vjp(x, g)")
def _optinv(ctx):
    mod = _hop(ctx)
    return _numpy_api(mod, mod.K, _module_flops(mod), out=False)


@register("optinv+out", "generated C kernel, NumPy API with preallocated out= buffers (kernel only)", out_variant=True)
def _optinv_out(ctx):
    mod = _hop(ctx)
    return _numpy_api(mod, mod.K, _module_flops(mod), out=True)


def _h13(ctx):
    if ctx.pair != (3, 4):
        raise Unavailable("hippynn's own 13 invariants exist at (3,4) only")
    from benchmarks.peers.sparse_poly import HIPPYNN_13

    return _module("hippynn_default", list(HIPPYNN_13), ctx.signature)


@register("optinv-h13", "generated C kernel for hippynn's own 13 invariants, NumPy API", invariants="hippynn")
def _optinv_h13(ctx):
    mod = _h13(ctx)
    return _numpy_api(mod, mod.K, _module_flops(mod), out=False)


# -- the generated C kernel through the torch adapter (what a hippynn user calls) ----------------------


def _torch_adapter(fn, n_out, flops):
    torch = _torch()

    def prepare(x, g):
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)

        def fwd():
            with torch.no_grad():
                return fn(xt)

        def fwd_bwd():
            xr = xt.detach().requires_grad_(True)
            y = fn(xr)
            return torch.autograd.grad(y, xr, gt)

        return Prepared(fwd, fwd_bwd, lambda: fwd().numpy())

    return n_out, flops, prepare


@register("optinv-torch", "generated C kernel through hop.torch_invariants (autograd.Function, torch tensors)", kind="torch")
def _optinv_torch(ctx):
    mod = _hop(ctx)
    _torch()
    return _torch_adapter(mod.torch_invariants, mod.K, _module_flops(mod))


@register("optinv-torch-cpp", "generated C kernel through the operators registered from C++ (torch_cpp_invariants)",
          kind="torch")
def _optinv_torch_cpp(ctx):
    mod = _hop(ctx)
    _torch()
    return _torch_adapter(mod.torch_cpp_invariants, mod.K, _module_flops(mod))


@register("optinv-layer", "generated C kernel through HopInvariantLayer (nn.Module in place of hippynn's layer)", kind="torch")
def _optinv_layer(ctx):
    mod = _hop(ctx)
    _torch()
    layer = mod.HopInvariantLayer(n_max=ctx.n_max, l_max=ctx.l_max)
    return _torch_adapter(layer, mod.K, _module_flops(mod))


# -- hippynn --------------------------------------------------------------------------------------


def _hippynn_fn(ctx, compiled: bool):
    from benchmarks.peers import hippynn_peer

    why = hippynn_peer.available()
    if why:
        raise Unavailable(f"hippynn: {why}")
    if ctx.pair not in hippynn_peer.SUPPORTED:
        raise Unavailable(f"hippynn's calc_invariants supports l_max <= 3 (asked ({ctx.l_max}, {ctx.n_max}))")
    peer = hippynn_peer.HippynnPeer(ctx.l_max, ctx.n_max, ctx.dtype)
    l_max, n_max, C, calc = ctx.l_max, ctx.n_max, peer.C, peer.calc_invariants

    def fn(x):
        return calc(l_max, n_max, x, C)

    if compiled:
        torch = _torch()
        fn = torch.compile(fn, dynamic=True)
    return fn


def _hippynn_k(ctx):
    from benchmarks.peers.sparse_poly import hippynn_einsums

    return len(hippynn_einsums(ctx.l_max, ctx.n_max))


@register("hippynn", "hippynn calc_invariants, PyTorch eager", kind="torch", invariants="hippynn")
def _hippynn(ctx):
    return _torch_adapter(_hippynn_fn(ctx, compiled=False), _hippynn_k(ctx), (None, None))


@register("hippynn-compiled", "hippynn calc_invariants under torch.compile (Inductor C++, dynamic shapes)", kind="torch",
          invariants="hippynn")
def _hippynn_compiled(ctx):
    return _torch_adapter(_hippynn_fn(ctx, compiled=True), _hippynn_k(ctx), (None, None))


# -- reference peers -----------------------------------------------------------------------------------


@register("numpy-ref", "optinv's NumPy einsum reference evaluator (vjp by einsum environments)", threads=(1,))
def _numpy_ref(ctx):
    from benchmarks.peers import numpy_ref

    graphs, sig = ctx.basis.graphs, ctx.signature

    def prepare(x, g):
        def fwd_bwd():
            numpy_ref.forward(graphs, x, sig)
            return numpy_ref.vjp(graphs, x, g, sig)

        return Prepared(lambda: numpy_ref.forward(graphs, x, sig), fwd_bwd, lambda: numpy_ref.forward(graphs, x, sig))

    return len(graphs), (None, None), prepare


def _sparse(ctx, which: str):
    from benchmarks.peers.sparse_poly import HIPPYNN_13, SparsePolyKernel

    if which == "h13" and ctx.pair != (3, 4):
        raise Unavailable("hippynn's own 13 invariants exist at (3,4) only")
    einsums = list(HIPPYNN_13) if which == "h13" else ctx.basis.einsums
    kern = _SPARSE_CACHE.get((which, ctx.pair))
    if kern is None:
        kern = SparsePolyKernel(einsums, ctx.signature, name=f"{which}_l{ctx.l_max}_n{ctx.n_max}")
        _SPARSE_CACHE[(which, ctx.pair)] = kern
        _LOADED_MODULES.append(kern)
    fl = kern.metadata["flops"]
    return kern, (fl["forward"], fl["vjp"])


_SPARSE_CACHE: dict = {}


@register("sparse-poly", "HIP-HOP-NN GPU variant's strategy in C: every invariant as expanded monomials")
def _sparse_poly(ctx):
    kern, flops = _sparse(ctx, "opt")
    return _numpy_api(kern, kern.n_out, flops, out=False)


@register("sparse-poly+out", "sparse-poly with preallocated out= buffers", out_variant=True)
def _sparse_poly_out(ctx):
    kern, flops = _sparse(ctx, "opt")
    return _numpy_api(kern, kern.n_out, flops, out=True)


@register("sparse-poly-h13", "sparse-poly for hippynn's own 13 invariants (the GPU variant's polynomials)",
          invariants="hippynn")
def _sparse_poly_h13(ctx):
    kern, flops = _sparse(ctx, "h13")
    return _numpy_api(kern, kern.n_out, flops, out=False)
