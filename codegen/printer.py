"""Printing program statements as C / CUDA with sympy's C printer.

Two changes to sympy's ``C99CodePrinter``:

- small integer powers become products (``x*x`` rather than ``pow(x, 2)``),
  which is what both C compilers and NVRTC turn into the fastest code and which
  keeps float32 in float32;
- terms of a sum that share a numeric coefficient are summed first and scaled
  once (``2*(a*b + c*d)``, not ``2*a*b + 2*c*d``).  Compilers may not
  reassociate floating point, so each ``2*a*b`` costs a multiplication by 2
  of its own; the invariants' contractions are full of such weights.  The
  printed (3,4) forward has 344 operations per row instead of 376, and GCC 12
  (AVX-512) issues 202 instead of 213 arithmetic vector instructions per block
  of 16 rows (the vjp about as many as before: it still measured faster, see
  ``benchmarks/README.md``).  The groups come from
  :func:`optinv.codegen.program.shared_weight_groups`, which ``Program.flops``
  counts with, so flop counts describe the printed code.  Only rounding
  changes, not the value.

>>> import sympy as sp
>>> a, b, c, d = sp.symbols("a b c d")
>>> KernelPrinter().doprint(a**3 - 2*a*b)
'a*a*a - 2*a*b'
>>> KernelPrinter().doprint(a + 2*a*b - 2*c*d + 3*d)
'2*(a*b - c*d) + a + 3*d'

Each target (:mod:`optinv.codegen.targets`) prints with this class or a subclass.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import precedence

from optinv.codegen.program import shared_weight as _weight, shared_weight_groups


class KernelPrinter(C99CodePrinter):
    """C99 printer with integer powers expanded into multiplications."""

    def _print_Pow(self, expr):
        if expr.exp.is_Integer and 0 < expr.exp <= 16:
            base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Mul"])
            return "*".join([base] * int(expr.exp))
        raise ValueError(f"unsupported power in generated code: {expr}")

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Add(self, expr, order=None):
        terms = self._as_ordered_terms(expr, order=order)
        shared = shared_weight_groups(terms)
        if not shared:
            return super()._print_Add(expr, order=order)
        pieces, printed = [], set()  # each group sits where its first member was
        for term in terms:
            weight = _weight(term)
            if weight in shared:
                if weight not in printed:
                    printed.add(weight)
                    # factor out the first member's sign too, so the group reads 2*(a*b - c*d) or -2*(...)
                    scale = weight * sp.sign(shared[weight][0].as_coeff_Mul()[0])
                    inner = sp.Add(*(_unit_term(member, scale) for member in shared[weight]))
                    factor = self._print(weight) if weight.is_Integer else f"({self._print(weight)})"
                    pieces.append(f"{'-' if scale < 0 else ''}{factor}*({self._print(inner)})")
                continue
            text = self._print(term)
            pieces.append(f"({text})" if precedence(term) < precedence(expr) or term.is_Add else text)
        out = pieces[0]
        for piece in pieces[1:]:
            out += f" - {piece[1:]}" if piece.startswith("-") else f" + {piece}"
        return out


def _unit_term(member: sp.Expr, scale: sp.Expr) -> sp.Expr:
    """``member / scale`` for a member whose coefficient is +-scale, with an exact coefficient of +-1.

    Not ``member / scale``: with a Float weight that leaves a Float 1.0 coefficient, which sympy does
    not treat as 1, so the inner sum would be grouped again, forever.
    """
    coeff, rest = member.as_coeff_Mul()
    return rest if (coeff > 0) == (scale > 0) else -rest

