"""What a target is: its printer, its files, its runtime loader and how the harness runs it.

A :class:`Target` turns the four planned programs (forward, VJP, JVP, HVP) into
source files of a generated package, and says how the package runs them
(:attr:`Target.loader`, a class of :mod:`optinv.codegen.runtime.native`, and
:attr:`Target.array_modules`, the array types dispatched to it).  Its
:attr:`Target.backends` tell ``optinv verify`` and the test harness how to call
the generated module on this target and when that is impossible here (SKIP).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.program import Program

#: Program inputs of each kernel, in argument order.
ARG_ORDER = {"forward": ["x"], "vjp": ["x", "g"], "jvp": ["x", "u"], "hvp": ["x", "g", "u"]}
KERNEL_DOCS = {
    "forward": "forward: invariants I(x)",
    "vjp": "vjp: g . dI/dx",
    "jvp": "jvp: dI/dx . u",
    "hvp": "hvp: sum_k g_k d2I_k/dx2 . u",
}
#: Floating types every kernel is instantiated for.
REAL_TYPES = [{"real": "float", "suffix": "f32"}, {"real": "double", "suffix": "f64"}]


@dataclass(frozen=True)
class KernelSpec:
    """One kernel as the templates see it: typed, with statements already printed for the target."""

    name: str
    doc: str
    flops: int
    args: list[dict]  # {"name", "width", "used": indices the program reads}
    width: int  # outputs per row
    statements: list[tuple[str, str]]
    outputs: list[str]


def kernel_spec(name: str, program: Program, D: int, K: int, print_rhs: Callable[[sp.Expr], str]) -> KernelSpec:
    """The template view of ``program`` (kernel ``name``), each expression printed by ``print_rhs``."""
    widths = {"x": D, "g": K, "u": D}
    used = program.used_inputs()
    return KernelSpec(
        name=name,
        doc=KERNEL_DOCS[name],
        flops=program.flops,
        args=[{"name": a, "width": widths[a], "used": used.get(a, [])} for a in ARG_ORDER[name]],
        width=len(program.outputs),
        statements=[(str(t), print_rhs(e)) for t, e in program.statements],
        outputs=[print_rhs(o) for o in program.outputs],
    )


# -- how the harness runs a target ---------------------------------------------------------


def torch_unavailable() -> str | None:
    """Why the PyTorch adapter cannot run here, or None when it can."""
    return None if importlib.util.find_spec("torch") is not None else "torch is not importable (pip install 'optinv[torch]')"



def cuda_unavailable() -> str | None:
    """Why CUDA kernels cannot run here, or None when they can."""
    if importlib.util.find_spec("cupy") is None:
        return "no GPU: cupy is not importable"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        return f"no GPU: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None if count > 0 else "no GPU: CuPy sees no CUDA device"


def torch_cuda_unavailable() -> str | None:
    """Why PyTorch cannot run the CUDA kernels here (no torch, or no GPU through CuPy), or None."""
    return torch_unavailable() or cuda_unavailable()


def call_numpy(module, op: str, arrays: list[np.ndarray]):
    """The module's NumPy entry point (``module.forward(x)``, ...)."""
    return getattr(module, op)(*arrays)


def call_cupy(module, op: str, arrays: list[np.ndarray]):
    """The module's entry point on CuPy arrays, results copied back to the host."""
    import cupy

    return cupy.asnumpy(getattr(module, op)(*(cupy.asarray(a) for a in arrays)))


def torch_caller(device: str, invariants: Callable = lambda module: module.torch_invariants) -> Callable:
    """Every op through autograd of ``invariants(module)`` (default: the torch adapter, the wiring users
    train with) on ``device``: VJP by backward, JVP and HVP by double backward."""

    def call(module, op: str, arrays: list[np.ndarray]):
        import torch

        ts = [torch.from_numpy(a).to(device) for a in arrays]
        x = ts[0].clone().requires_grad_(True)
        y = invariants(module)(x)
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

    return call


def always_available() -> str | None:
    return None


@dataclass(frozen=True)
class Backend:
    """One way of running a generated module's kernels; takes and returns float64 NumPy arrays.

    ``kind`` names the way (``"c"``, ``"torch"``, ...); ``call(module, op,
    arrays)`` runs op ``"forward"``, ``"vjp"``, ``"jvp"`` or ``"hvp"`` on arrays
    already cast to ``dtype``; ``unavailable()`` says why it cannot run here.
    """

    name: str
    kind: str
    dtype: str
    call: Callable = field(compare=False, repr=False)
    unavailable: Callable[[], str | None] = field(default=always_available, compare=False, repr=False)

    def cast(self, a: np.ndarray) -> np.ndarray:
        """Round an input to what the kernel sees (float64 copy of the dtype's values)."""
        return np.asarray(a, dtype=self.dtype).astype(np.float64)

    def __call__(self, module, op: str, *arrays: np.ndarray) -> np.ndarray:
        arrs = [np.ascontiguousarray(a, dtype=self.dtype) for a in arrays]
        return np.asarray(self.call(module, op, arrs), dtype=np.float64)


def backends_for(kind: str, call: Callable, unavailable: Callable[[], str | None] = always_available) -> tuple:
    """The float64 and float32 backends of one kind (float64 first)."""
    return tuple(Backend(f"{kind}-{suffix}", kind, dtype, call, unavailable)
                 for suffix, dtype in (("f64", "float64"), ("f32", "float32")))


# -- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A code-generation target: printer, templates (output file -> template) and how packages use it.

    ``loader`` is the runtime class (in :mod:`optinv.codegen.runtime.native`) a
    package instantiates as ``attribute``; arrays whose type's module starts with
    one of ``array_modules`` are dispatched to it (empty: the default target).
    ``None`` for ``loader``: the package does not dispatch to this target
    (its backends load the files themselves).  ``init_template``: a template
    whose text is added to the package's ``__init__.py`` (what the target
    exports, e.g. a ``torch_module()`` or ``jax_invariants``), rendered with
    the same context as the target's files plus ``target``.
    """

    name: str
    printer: KernelPrinter
    templates: dict[str, str]
    loader: str | None = None
    attribute: str | None = None
    array_modules: tuple[str, ...] = ()
    backends: tuple[Backend, ...] = ()
    init_template: str | None = None

    def print_rhs(self, expr: sp.Expr) -> str:
        return self.printer.doprint(expr)

    def kernels(self, programs: dict[str, Program], D: int, K: int) -> list[KernelSpec]:
        return [kernel_spec(n, p, D, K, self.print_rhs) for n, p in programs.items()]

    def init_section(self, env, common: dict) -> str | None:
        """Text this target adds to the package's ``__init__.py`` (None: nothing)."""
        if self.init_template is None:
            return None
        return env.get_template(self.init_template).render(common, target=self)

    def render(self, env, common: dict, programs: dict[str, Program]) -> dict[str, str]:
        """This target's files, as text, keyed by file name (``env``: the Jinja environment of templates/)."""
        kernels = self.kernels(programs, common["D"], common["K"])
        return {fname: env.get_template(tpl).render(common, kernels=kernels) for fname, tpl in self.templates.items()}
