"""The sparse-polynomial peer: HIP-HOP-NN's GPU strategy, implemented fairly in C.

HIP-HOP-NN's GPU variant expands every invariant into a polynomial over the
row's D coefficients and evaluates all polynomials with one generic kernel; the
gradient is a second set of polynomials.  This module does the same on the CPU:

1. :func:`expand` builds the Cartesian tensors from coefficient symbols with the
   integer coefficient maps (hippynn convention), contracts them symbolically as
   the einsum string says, and expands each invariant to a sparse integer
   polynomial (sympy ``PolyElement`` over ``ZZ``).
2. :class:`SparsePolynomialProgram` lists the monomials of every invariant and of
   every derivative ``dI_k/dx_d``, and counts the flops of evaluating them
   monomial by monomial.
3. :func:`emit_c` prints a C file, float and double: OpenMP over blocks of rows,
   each block transposed to structure-of-arrays so the compiler vectorises across
   rows; inside, every monomial is ``coefficient * product of powers`` added to
   its invariant's accumulator (powers ``x_d^e`` computed once per row).  The
   backward evaluates every derivative polynomial monomial by monomial and
   contracts it with ``g``: ``grad_d = sum_k g_k * dI_k/dx_d``.
4. :class:`SparsePolyKernel` compiles it (same flags as the generated kernels,
   see :mod:`.cbuild`) and calls it through ctypes.

Flop convention (also used for the generated kernels' metadata): every
floating-point multiply and add counts one flop, a fused multiply-add two;
sign changes are free.  A monomial ``c * x^a y^b z^c`` with f distinct
variables costs ``f - 1`` multiplies, one more if ``|c| != 1``, and one add
unless it starts its accumulator.

>>> from optinv.algebra.signature import Signature
from optinv.codegen.catalog import HIPPYNN_INVARIANTS
>>> prog = SparsePolynomialProgram.from_einsums(HIPPYNN_13, Signature.from_l_max(3))
>>> prog.n_monomials
352
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from sympy import ZZ
from sympy.polys.rings import ring

from optinv.algebra.cartesian import tensors_of_rows
from optinv.algebra.signature import Signature
from optinv.codegen.catalog import HIPPYNN_INVARIANTS

from .cbuild import build_and_load, cflags

# HIP-HOP-NN's hand-written set for l_max=3, n_max=4 (hippynn 0.1.3, order of calc_invariants).
HIPPYNN_13 = HIPPYNN_INVARIANTS  # HIP-HOP-NN's 13 invariants (the catalogue's copy)
# calc_invariants(l_max, n_max) returns the invariants of HIPPYNN_13 with these indices, in this order.
HIPPYNN_SUBSETS = {
    (2, 2): (0, 1, 2),
    (2, 3): (0, 1, 2, 3, 6),
    (2, 4): (0, 1, 2, 3, 6, 7),
    (3, 2): (0, 1, 2, 4),
    (3, 3): (0, 1, 2, 3, 4, 6, 10),
    (3, 4): tuple(range(13)),
}

Term = tuple[int, tuple[int, ...]]  # (integer coefficient, exponents over the D coefficients)


def hippynn_einsums(l_max: int, n_max: int) -> list[str]:
    """The einsum strings that hippynn's ``calc_invariants(l_max, n_max)`` computes, in its order."""
    return [HIPPYNN_13[i] for i in HIPPYNN_SUBSETS[(l_max, n_max)]]


def expand(einsums, signature: Signature):
    """Expand each invariant to a sparse integer polynomial in the row's coefficients.

    Returns ``(ring, generators, polys)``; ``generators[d]`` is the symbol of
    coefficient ``d`` of the row.
    """
    R, *xs = ring(",".join(f"x{d}" for d in range(signature.dim)), ZZ)
    row = np.empty(signature.dim, dtype=object)
    row[:] = xs
    tensors = {name: (t.item() if t.ndim == 0 else t) for name, t in tensors_of_rows(row, signature).items()}
    polys = []
    for text in einsums:
        lhs, rhs = text.split("->")
        names = [n.strip() for n in rhs.split(",")[1:]]
        ops = [tensors[signature.tensor(n).name] for n in names]
        if len(ops) == 1 and lhs.strip() == "":
            polys.append(R(ops[0]))
            continue
        value = np.einsum(lhs + "->", *ops, optimize="optimal")
        polys.append(R(value.item() if isinstance(value, np.ndarray) else value))
    return R, xs, polys


def _terms(poly) -> list[Term]:
    return sorted(((int(c), tuple(int(e) for e in m)) for m, c in poly.terms()), key=lambda t: t[1], reverse=True)


def _term_mults(term: Term) -> int:
    coeff, exps = term
    nf = sum(1 for e in exps if e)
    if nf == 0:
        return 0
    return nf - 1 + (1 if abs(coeff) != 1 else 0)


def _sum_flops(terms: list[Term]) -> int:
    """Flops of ``acc = t_0; acc += t_1; ...`` with each term a coefficient times a product of powers."""
    if not terms:
        return 0
    return sum(_term_mults(t) for t in terms) + len(terms) - 1


def _power_plan(max_exp: dict[int, set[int]]) -> list[tuple[int, int, int, int]]:
    """``(d, e, e1, e2)``: compute ``x_d^e = x_d^e1 * x_d^e2`` (each one flop), lower powers first."""
    plan = []
    for d in sorted(max_exp):
        have = {1}
        todo = sorted(max_exp[d])

        def need(e):
            if e in have:
                return
            e1 = e // 2
            e2 = e - e1
            need(e1)
            need(e2)
            plan.append((d, e, e1, e2))
            have.add(e)

        for e in todo:
            need(e)
    return plan


@dataclass
class SparsePolynomialProgram:
    """Monomials of K invariants and of their KxD derivatives, with flop counts per row."""

    einsums: tuple[str, ...]
    dim: int
    forward_terms: list[list[Term]]  # [k] -> terms of I_k
    derivative_terms: list[list[list[Term]]]  # [k][d] -> terms of dI_k/dx_d

    @classmethod
    def from_einsums(cls, einsums, signature: Signature) -> "SparsePolynomialProgram":
        _, xs, polys = expand(einsums, signature)
        fwd = [_terms(p) for p in polys]
        der = [[_terms(p.diff(x)) for x in xs] for p in polys]
        return cls(tuple(einsums), signature.dim, fwd, der)

    @property
    def n_invariants(self) -> int:
        return len(self.forward_terms)

    @property
    def n_monomials(self) -> int:
        return sum(len(t) for t in self.forward_terms)

    @property
    def monomials_per_invariant(self) -> list[int]:
        return [len(t) for t in self.forward_terms]

    @property
    def n_derivative_monomials(self) -> int:
        return sum(len(t) for row in self.derivative_terms for t in row)

    def _powers(self, term_lists) -> list[tuple[int, int, int, int]]:
        need: dict[int, set[int]] = {}
        for terms in term_lists:
            for _, exps in terms:
                for d, e in enumerate(exps):
                    if e >= 2:
                        need.setdefault(d, set()).add(e)
        return _power_plan(need)

    @cached_property
    def forward_powers(self):
        return self._powers(self.forward_terms)

    @cached_property
    def vjp_powers(self):
        return self._powers([t for row in self.derivative_terms for t in row])

    @property
    def flops_forward(self) -> int:
        return len(self.forward_powers) + sum(_sum_flops(t) for t in self.forward_terms)

    @property
    def flops_vjp(self) -> int:
        flops = len(self.vjp_powers)
        for d in range(self.dim):
            used = [k for k in range(self.n_invariants) if self.derivative_terms[k][d]]
            for n, k in enumerate(used):
                flops += _sum_flops(self.derivative_terms[k][d]) + (1 if n == 0 else 2)
        return flops

    def summary(self) -> dict:
        return {
            "invariants": self.n_invariants,
            "monomials": self.n_monomials,
            "monomials_per_invariant": self.monomials_per_invariant,
            "derivative_monomials": self.n_derivative_monomials,
            "flops_forward": self.flops_forward,
            "flops_vjp": self.flops_vjp,
        }


# -- C emission -----------------------------------------------------------------------

_CTYPES = {"f32": ("float", "f", 64), "f64": ("double", "", 32)}  # C type, literal suffix, rows per block


def _var(d: int, e: int) -> str:
    return f"x{d}" if e == 1 else f"x{d}_{e}"


def _term_expr(term: Term, suffix: str) -> tuple[str, bool]:
    """C expression of ``|coefficient| * product``, and whether the coefficient is negative."""
    coeff, exps = term
    factors = [_var(d, e) for d, e in enumerate(exps) if e]
    if abs(coeff) != 1 or not factors:
        factors.insert(0, f"{abs(coeff)}.0{suffix}")
    return "*".join(factors), coeff < 0


def _sum_lines(target: str, terms: list[Term], suffix: str, ctype: str, indent: str) -> list[str]:
    lines = []
    for n, term in enumerate(terms):
        expr, neg = _term_expr(term, suffix)
        if n == 0:
            lines.append(f"{indent}{ctype} {target} = {'-(' + expr + ')' if neg else expr};")
        else:
            lines.append(f"{indent}{target} {'-=' if neg else '+='} {expr};")
    return lines


def _forward_body(prog: SparsePolynomialProgram, ctype: str, sfx: str, ind: str, load, store) -> list[str]:
    """Straight-line forward for one row: ``load(d)`` reads coefficient d, ``store(k, var)`` writes I_k."""
    lines = [f"{ind}const {ctype} x{d} = {load(d)};" for d in range(prog.dim)]
    lines += [f"{ind}const {ctype} {_var(d, e)} = {_var(d, e1)}*{_var(d, e2)};" for d, e, e1, e2 in prog.forward_powers]
    for k, terms in enumerate(prog.forward_terms):
        if terms:
            lines += _sum_lines(f"I{k}", terms, sfx, ctype, ind)
            lines.append(f"{ind}{store(k, f'I{k}')}")
        else:
            lines.append(f"{ind}{store(k, '0')}")
    return lines


def _vjp_body(prog: SparsePolynomialProgram, ctype: str, sfx: str, ind: str, load, load_g, store) -> list[str]:
    """Straight-line vjp for one row: every derivative polynomial monomial by monomial, contracted with g."""
    K = prog.n_invariants
    lines = [f"{ind}const {ctype} x{d} = {load(d)};" for d in range(prog.dim)]
    lines += [f"{ind}const {ctype} g{k} = {load_g(k)};" for k in range(K)]
    lines += [f"{ind}const {ctype} {_var(d, e)} = {_var(d, e1)}*{_var(d, e2)};" for d, e, e1, e2 in prog.vjp_powers]
    for d in range(prog.dim):
        used = [k for k in range(K) if prog.derivative_terms[k][d]]
        if not used:
            lines.append(f"{ind}{store(d, '0')}")
            continue
        lines.append(f"{ind}{{")
        for k in used:
            lines += _sum_lines(f"t{k}", prog.derivative_terms[k][d], sfx, ctype, ind + "    ")
        lines.append(f"{ind}    {ctype} a = g{used[0]}*t{used[0]};")
        lines += [f"{ind}    a += g{k}*t{k};" for k in used[1:]]
        lines.append(f"{ind}    {store(d, 'a')}")
        lines.append(f"{ind}}}")
    return lines


def _header(prog: SparsePolynomialProgram, name: str, what: str) -> list[str]:
    return [
        f"/* Sparse-polynomial peer ({name}, {what}): {prog.n_invariants} invariants, {prog.n_monomials} monomials,",
        f"   {prog.n_derivative_monomials} derivative monomials, D = {prog.dim}.",
        f"   Flops per row: forward {prog.flops_forward}, vjp {prog.flops_vjp}.",
        "   Generated by optinv benchmarks/peers/sparse_poly.py; evaluated monomial by monomial. */",
    ]


def emit_c(prog: SparsePolynomialProgram, name: str = "sparse_poly") -> str:
    """C source of the forward and vjp kernels, float (``_f32``) and double (``_f64``)."""
    D, K = prog.dim, prog.n_invariants
    out = _header(prog, name, "C, OpenMP") + [
        "#include <omp.h>",
        "",
        "void sp_set_threads(int n) { omp_set_num_threads(n); }",
        "int sp_max_threads(void) { return omp_get_max_threads(); }",
        "",
    ]
    for tag, (ctype, sfx, blk) in _CTYPES.items():
        ind = "            "
        out += [
            f"void sp_forward_{tag}(const {ctype} *restrict x, {ctype} *restrict out, long n)",
            "{",
            "    #pragma omp parallel for schedule(static)",
            f"    for (long r0 = 0; r0 < n; r0 += {blk}) {{",
            f"        {ctype} xs[{D}][{blk}] __attribute__((aligned(64)));",
            f"        {ctype} os[{K}][{blk}] __attribute__((aligned(64)));",
            f"        const long nb = n - r0 < {blk} ? n - r0 : {blk};",
            f"        for (long b = 0; b < nb; ++b) for (int d = 0; d < {D}; ++d) xs[d][b] = x[(r0 + b) * {D} + d];",
            f"        for (long b = nb; b < {blk}; ++b) for (int d = 0; d < {D}; ++d) xs[d][b] = 0;",
            "        #pragma omp simd",
            f"        for (int b = 0; b < {blk}; ++b) {{",
        ]
        out += _forward_body(prog, ctype, sfx, ind, lambda d: f"xs[{d}][b]", lambda k, v: f"os[{k}][b] = {v};")
        out += [
            "        }",
            f"        for (long b = 0; b < nb; ++b) for (int k = 0; k < {K}; ++k) out[(r0 + b) * {K} + k] = os[k][b];",
            "    }",
            "}",
            "",
            f"void sp_vjp_{tag}(const {ctype} *restrict x, const {ctype} *restrict g, {ctype} *restrict out, long n)",
            "{",
            "    #pragma omp parallel for schedule(static)",
            f"    for (long r0 = 0; r0 < n; r0 += {blk}) {{",
            f"        {ctype} xs[{D}][{blk}] __attribute__((aligned(64)));",
            f"        {ctype} gs[{K}][{blk}] __attribute__((aligned(64)));",
            f"        {ctype} os[{D}][{blk}] __attribute__((aligned(64)));",
            f"        const long nb = n - r0 < {blk} ? n - r0 : {blk};",
            f"        for (long b = 0; b < nb; ++b) for (int d = 0; d < {D}; ++d) xs[d][b] = x[(r0 + b) * {D} + d];",
            f"        for (long b = 0; b < nb; ++b) for (int k = 0; k < {K}; ++k) gs[k][b] = g[(r0 + b) * {K} + k];",
            f"        for (long b = nb; b < {blk}; ++b) {{ for (int d = 0; d < {D}; ++d) xs[d][b] = 0; for (int k = 0; k < {K}; ++k) gs[k][b] = 0; }}",
            "        #pragma omp simd",
            f"        for (int b = 0; b < {blk}; ++b) {{",
        ]
        out += _vjp_body(prog, ctype, sfx, ind, lambda d: f"xs[{d}][b]", lambda k: f"gs[{k}][b]",
                         lambda d, v: f"os[{d}][b] = {v};")
        out += [
            "        }",
            f"        for (long b = 0; b < nb; ++b) for (int d = 0; d < {D}; ++d) out[(r0 + b) * {D} + d] = os[d][b];",
            "    }",
            "}",
            "",
        ]
    return "\n".join(out)


def emit_cuda(prog: SparsePolynomialProgram, name: str = "sparse_poly") -> str:
    """CUDA source (CuPy ``RawModule``): one thread per row; ``sp_forward_{f32,f64}``, ``sp_vjp_{f32,f64}``.

    Arguments ``(x, out, n)`` and ``(x, g, out, n)`` with ``n`` a 64-bit integer.
    """
    D, K = prog.dim, prog.n_invariants
    out = _header(prog, name, "CUDA") + [""]
    for tag, (ctype, sfx, _) in _CTYPES.items():
        ind = "    "
        out += [
            f'extern "C" __global__ void sp_forward_{tag}(const {ctype} *__restrict__ x, {ctype} *__restrict__ out, long long n)',
            "{",
            "    const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
            "    if (r >= n) return;",
            f"    const {ctype} *xr = x + r * {D};",
            f"    {ctype} *yr = out + r * {K};",
        ]
        out += _forward_body(prog, ctype, sfx, ind, lambda d: f"xr[{d}]", lambda k, v: f"yr[{k}] = {v};")
        out += [
            "}",
            "",
            f'extern "C" __global__ void sp_vjp_{tag}(const {ctype} *__restrict__ x, const {ctype} *__restrict__ g, '
            f"{ctype} *__restrict__ out, long long n)",
            "{",
            "    const long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
            "    if (r >= n) return;",
            f"    const {ctype} *xr = x + r * {D};",
            f"    const {ctype} *gr = g + r * {K};",
            f"    {ctype} *yr = out + r * {D};",
        ]
        out += _vjp_body(prog, ctype, sfx, ind, lambda d: f"xr[{d}]", lambda k: f"gr[{k}]", lambda d, v: f"yr[{d}] = {v};")
        out += ["}", ""]
    return "\n".join(out)


class SparsePolyKernel:
    """Compiled sparse-polynomial kernels for one list of invariants.

    ``forward(x, out=None)`` -> ``(N, K)``; ``vjp(x, g, out=None)`` -> ``(N, D)``;
    float32 and float64 rows; ``set_num_threads(n)``; ``metadata`` with the
    counts and flops per row.  Same call shape as a generated optinv module.
    """

    def __init__(self, einsums, signature: Signature, name: str = "sparse_poly"):
        self.signature = signature
        self.program = SparsePolynomialProgram.from_einsums(einsums, signature)
        self.source = emit_c(self.program, name)
        self._lib = build_and_load(self.source, f"sparse_poly_{name}")
        P = ctypes.c_void_p
        for tag in _CTYPES:
            getattr(self._lib, f"sp_forward_{tag}").argtypes = [P, P, ctypes.c_long]
            getattr(self._lib, f"sp_vjp_{tag}").argtypes = [P, P, P, ctypes.c_long]
        self._lib.sp_set_threads.argtypes = [ctypes.c_int]
        self.dim = signature.dim
        self.n_out = self.program.n_invariants
        self.metadata = {
            "name": name,
            "einsums": list(einsums),
            "cflags": list(cflags()),
            "flops": {"forward": self.program.flops_forward, "vjp": self.program.flops_vjp},
            **self.program.summary(),
        }

    def set_num_threads(self, n: int) -> None:
        self._lib.sp_set_threads(int(n))

    def _rows(self, x, name="x", cols=None):
        cols = self.dim if cols is None else cols
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: expected float32 or float64, got {x.dtype}")
        if x.ndim != 2 or x.shape[1] != cols:
            raise ValueError(f"{name}: expected shape (N, {cols}), got {x.shape}")
        return np.ascontiguousarray(x)

    def _out(self, out, shape, dtype):
        if out is None:
            return np.empty(shape, dtype=dtype)
        if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out: expected a C-contiguous {dtype} array of shape {shape}")
        return out

    def forward(self, x, out=None):
        x = self._rows(x)
        out = self._out(out, (x.shape[0], self.n_out), x.dtype)
        tag = "f32" if x.dtype == np.float32 else "f64"
        getattr(self._lib, f"sp_forward_{tag}")(x.ctypes.data, out.ctypes.data, x.shape[0])
        return out

    def vjp(self, x, g, out=None):
        x = self._rows(x)
        g = self._rows(g, "g", self.n_out)
        if g.shape[0] != x.shape[0] or g.dtype != x.dtype:
            raise ValueError(f"g: expected {x.dtype} of shape ({x.shape[0]}, {self.n_out}), got {g.dtype} {g.shape}")
        out = self._out(out, x.shape, x.dtype)
        tag = "f32" if x.dtype == np.float32 else "f64"
        getattr(self._lib, f"sp_vjp_{tag}")(x.ctypes.data, g.ctypes.data, out.ctypes.data, x.shape[0])
        return out
