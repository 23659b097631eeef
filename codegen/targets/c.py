"""Target ``c``: C11 with OpenMP, rows vectorised in GCC/Clang vector types; run through ctypes.

The kernels work on blocks of rows held in vector types, so a constant on the
right-hand side must be broadcast into every lane (``(real_v){0} + c``).
"""

from __future__ import annotations

import sympy as sp

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets.base import Target, backends_for, call_numpy, torch_caller, torch_unavailable


class VectorCPrinter(KernelPrinter):
    """C99 with integer powers as products; constants broadcast into a vector of lanes."""

    def doprint(self, expr, assign_to=None):
        text = super().doprint(expr, assign_to)
        if isinstance(expr, sp.Basic) and expr.is_Number:
            return f"(real_v){{0}} + {text}"
        return text


TARGET = Target(
    name="c",
    printer=VectorCPrinter(),
    templates={"kernels.c": "kernels.c.j2"},
    loader="CKernels",
    attribute="_c",
    array_modules=(),
    backends=backends_for("c", call_numpy) + backends_for("torch", torch_caller("cpu"), torch_unavailable),
)
