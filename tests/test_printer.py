"""The kernel printer's grouped sums (``2*(a*b - c*d)``) against sympy's own value of the expression.

Every target prints through :class:`KernelPrinter` or a subclass; the printed text of the
C-family printers and of the column printer is also valid Python for these expressions
(products, sums, parenthesised float constants), so evaluating it is an independent check.
"""

from __future__ import annotations

import math

import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from budget import scaled
from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets.c import VectorCPrinter
from optinv.codegen.targets.python_source import ColumnPrinter

SYMBOLS = sp.symbols("a b c d e")
VALUES = dict(zip(SYMBOLS, (0.7, -1.3, 2.1, 0.45, -0.9)))
PRINTERS = (KernelPrinter(), VectorCPrinter(), ColumnPrinter())
COEFFS = [1, -1, 2, -2, 3, -3, sp.Rational(1, 3), sp.Rational(-2, 3), sp.Float(0.5), sp.Float(-0.5), sp.Float(2.0),
          sp.Float(0.1)]


def _printed_value(printer, expr) -> float:
    return eval(printer.doprint(expr), {}, {str(s): v for s, v in VALUES.items()})


@pytest.mark.parametrize("printer", PRINTERS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("weight", [sp.Float(0.5), sp.Float(0.1), sp.Float(2.0)])
def test_sums_sharing_a_float_weight_print_once_scaled(printer, weight):
    """A Float weight divides its members to a Float 1.0 coefficient, which must not be grouped again (it recursed)."""
    a, b, c, d = SYMBOLS[:4]
    expr = weight * a * b - weight * c + 3 * d
    text = printer.doprint(expr)
    assert text.count("*(") == 1, text  # one shared scale
    assert math.isclose(_printed_value(printer, expr), float(expr.subs(VALUES)), rel_tol=1e-12)


def _sums():
    term = st.builds(lambda c, xs: c * sp.Mul(*xs), st.sampled_from(COEFFS), st.lists(st.sampled_from(SYMBOLS),
                                                                                       min_size=1, max_size=3))

    def extend(inner):
        return st.one_of(
            st.builds(lambda ts, k: sp.Add(*ts) + k, st.lists(inner, min_size=1, max_size=5),
                      st.sampled_from([0, 1, -2, sp.Rational(1, 2)])),
            st.builds(lambda c, x, y: c * x * y, st.sampled_from(COEFFS), inner, inner),
            st.builds(lambda x: x ** 2, inner),
            st.builds(lambda x: -x, inner),
        )

    return st.recursive(term, extend, max_leaves=10)


@settings(max_examples=scaled(200))
@given(_sums())
def test_printed_sums_have_sympys_value(expr):
    """Grouped sums nested in products, powers and negations, with integer, rational and float weights."""
    if expr.is_Number or any(p.exp > 16 for p in expr.atoms(sp.Pow)):
        return
    want = float(expr.subs(VALUES))
    for printer in PRINTERS:
        assert math.isclose(_printed_value(printer, expr), want, rel_tol=1e-9, abs_tol=1e-9), printer.doprint(expr)
