"""Printing program statements as C / CUDA with sympy's C printer.

The only change to sympy's ``C99CodePrinter``: small integer powers become
products (``x*x`` rather than ``pow(x, 2)``), which is what both C compilers
and NVRTC turn into the fastest code and which keeps float32 in float32.

>>> import sympy as sp
>>> a, b = sp.symbols("a b")
>>> KernelPrinter().doprint(a**3 - 2*a*b)
'a*a*a - 2*a*b'

Each target (:mod:`optinv.codegen.targets`) prints with this class or a subclass.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter


class KernelPrinter(C99CodePrinter):
    """C99 printer with integer powers expanded into multiplications."""

    def _print_Pow(self, expr):
        if expr.exp.is_Integer and 0 < expr.exp <= 16:
            base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Mul"])
            return "*".join([base] * int(expr.exp))
        raise ValueError(f"unsupported power in generated code: {expr}")

    def _print_Integer(self, expr):
        return str(int(expr))
