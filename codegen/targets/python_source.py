"""What the Python-source targets (``torch``, ``jax``, ``triton``) share: a printer and a loader.

Each prints the Program as straight-line code on whole columns of rows
(``t3 = x0*x1 + ...`` over ``(N,)`` arrays, no loop over rows), writes it as a
Python module inside the generated package (``torch_kernels.py``, ...) and runs
it through the harness from there.
"""

from __future__ import annotations

import importlib

import sympy as sp

from optinv.codegen.printer import KernelPrinter


class ColumnPrinter(KernelPrinter):
    """Python arithmetic on columns: the C printer's products and sums are valid Python.

    Rationals print as float literals (``(1/2)`` would be integer-free Python,
    but a float literal keeps every frontend's constant folding trivial); a bare
    number (a constant output or temporary) is broadcast to a column by adding
    it to ``zero``, a zero column every template defines.
    """

    def _print_Rational(self, expr):
        return repr(float(expr.p) / float(expr.q))

    def _print_Float(self, expr):
        return repr(float(expr))

    def doprint(self, expr, assign_to=None):
        text = super().doprint(expr, assign_to)
        if isinstance(expr, sp.Basic) and expr.is_Number:
            return f"(zero + {text})"
        return text


def kernel_module(package, file_stem: str, target: str):
    """The generated ``file_stem.py`` of ``package`` (imported as its submodule), or a clear error."""
    if not (package.PACKAGE_DIR / f"{file_stem}.py").is_file():
        raise FileNotFoundError(f"{package.PACKAGE_DIR}: no {file_stem}.py; the package was generated without the "
                                f"{target!r} target (regenerate it with --targets including {target})")
    return importlib.import_module(f"{package.__name__}.{file_stem}")
