"""Emitting: a planned basis -> the files of a self-contained Python package.

:func:`render_module` is pure (same request, byte-identical files); writing and
loading live in :mod:`optinv.codegen.build`.
"""

from __future__ import annotations

import hashlib
import json
import keyword
from pathlib import Path
from dataclasses import dataclass

import jinja2
import sympy as sp

import optinv
import optinv.templates
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import PRIME
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.select import check_invariants
from optinv.algebra.signature import Signature
from optinv.codegen.plan import plan_forward
from optinv.codegen.printer import print_c
from optinv.codegen.program import Program, forward_mode, reverse_mode

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(optinv.templates.__file__).parent)),
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)
_TYPES = [{"real": "float", "suffix": "f32"}, {"real": "double", "suffix": "f64"}]


@dataclass
class KernelPrograms:
    """The four programs a module needs, all derived from one forward program."""

    forward: Program
    vjp: Program
    jvp: Program
    hvp: Program

    @property
    def flops(self) -> dict[str, int]:
        return {name: getattr(self, name).flops for name in ("forward", "vjp", "jvp", "hvp")}


def plan_kernels(graphs: list[ContractionGraph], signature: Signature) -> KernelPrograms:
    """Forward program (cheapest strategy) and its VJP, JVP and g-weighted HVP."""
    fwd = plan_forward(graphs, signature)
    vjp = reverse_mode(fwd)
    return KernelPrograms(forward=fwd, vjp=vjp, jvp=forward_mode(fwd), hvp=forward_mode(vjp))


_ARG_ORDER = {"forward": ["x"], "vjp": ["x", "g"], "jvp": ["x", "u"], "hvp": ["x", "g", "u"]}
_DOCS = {
    "forward": "forward: invariants I(x)",
    "vjp": "vjp: g . dI/dx",
    "jvp": "jvp: dI/dx . u",
    "hvp": "hvp: sum_k g_k d2I_k/dx2 . u",
}


def _kernel_spec(name: str, program: Program, D: int, K: int, cuda: bool) -> dict:
    widths = {"x": D, "g": K, "u": D}
    used = program.used_inputs()

    def rhs(e: sp.Expr) -> str:
        text = print_c(e)
        if e.is_Number and not cuda:
            return f"(real_v){{0}} + {text}"  # broadcast a constant into every lane
        return text

    return {
        "name": name,
        "doc": _DOCS[name],
        "flops": program.flops,
        "args": [{"name": a, "width": widths[a], "used": used.get(a, [])} for a in _ARG_ORDER[name]],
        "width": len(program.outputs),
        "statements": [(str(t), rhs(e)) for t, e in program.statements],
        "outputs": [rhs(o) for o in program.outputs],
    }


def _layout(signature: Signature) -> str:
    parts = []
    for spec, off in zip(signature.tensors, signature.offsets()):
        parts.append(f"{spec.name} (rank {spec.rank}) at columns {off}..{off + spec.size - 1}")
    return "; ".join(parts)


def render_module(
    name: str,
    graphs: list[ContractionGraph],
    signature: Signature,
    request: dict,
) -> dict[str, str]:
    """All files of the generated package ``name``, as text, keyed by file name."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise OptinvError(f"name: expected a Python identifier that is not a keyword, got {name!r}")
    if not graphs:
        raise OptinvError("invariants: expected at least one invariant to compile")
    check = check_invariants([g.einsum for g in graphs], signature)
    basis_info = {
        "rank": check.rank,
        "bound": check.bound,
        "complete": check.complete,
        "independent": [e.independent for e in check.entries],
        "certificate": f"exact Jacobian rank mod {PRIME} at a random integer point",
    }
    programs = plan_kernels(graphs, signature)
    D, K = signature.dim, len(graphs)
    request_text = json.dumps(request, sort_keys=True)
    common = {
        "name": name,
        "version": optinv.__version__,
        "request": request_text,
        "signature": signature.describe(),
        "D": D,
        "K": K,
        "types": _TYPES,
        "convention": signature.convention,
        "layout": _layout(signature),
        "invariants": [g.einsum for g in graphs],
    }
    progs = {n: getattr(programs, n) for n in ("forward", "vjp", "jvp", "hvp")}
    c_kernels = [_kernel_spec(n, p, D, K, cuda=False) for n, p in progs.items()]
    cu_kernels = [_kernel_spec(n, p, D, K, cuda=True) for n, p in progs.items()]
    files = {
        "kernels.c": _ENV.get_template("kernels.c.j2").render(common, kernels=c_kernels),
        "kernels.cu": _ENV.get_template("kernels.cu.j2").render(common, kernels=cu_kernels),
        "__init__.py": _ENV.get_template("module_init.py.j2").render(common, kernels=c_kernels),
        "_runtime.py": _ENV.get_template("runtime.py.j2").render(common),
        "_torch.py": _ENV.get_template("torch_adapter.py.j2").render(common),
    }
    metadata = {
        "name": name,
        "optinv_version": optinv.__version__,
        "request": request,
        "signature": signature.to_dict(),
        "convention": signature.convention,
        "group": signature.group,
        "D": D,
        "K": K,
        "invariants": [g.einsum for g in graphs],
        "degrees": [g.degree for g in graphs],
        "pseudoscalar": [g.parity(signature) == -1 for g in graphs],
        "flops": programs.flops,
        "strategy": programs.forward.strategy,
        "strategy_flops": programs.forward.notes.get("strategies", {}),
        "basis": basis_info,
        "sha256": {fname: hashlib.sha256(text.encode()).hexdigest() for fname, text in sorted(files.items())},
    }
    files["metadata.json"] = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    return files
