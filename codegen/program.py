"""Programs: straight-line code over one row's coefficients, with shared subexpressions.

A :class:`Program` is a list of assignments ``t = expr`` (sympy expressions over
inputs and earlier temporaries) and a list of output expressions.  It is built
from the contraction graphs of a basis by :mod:`optinv.codegen.plan`, and turned
into its derivatives here:

* :func:`reverse_mode` gives the vector-Jacobian product ``g . dI/dx``;
* :func:`forward_mode` gives the Jacobian-vector product ``J u``, and applied to
  the VJP program the g-weighted Hessian-vector product ``sum_k g_k H_k u``.

Every program knows its flop count before any code is emitted.

>>> import sympy as sp
>>> b = ProgramBuilder(["x"], {"x": 2})
>>> x0, x1 = b.inputs["x"]
>>> p = b.finish([b.emit(x0 * x1 + x0)])
>>> p.flops, reverse_mode(p).flops
(2, 3)
>>> a, b, c, d, e = sp.symbols("a b c d e")
>>> expr_flops(2*a*b - 2*c*d + e)  # as printed: 2*(a*b - c*d) + e
5
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sympy as sp


def shared_weight(term: sp.Expr):
    """The magnitude of ``term``'s numeric coefficient when it is worth sharing (not 1), else None."""
    coeff, rest = term.as_coeff_Mul()
    if not coeff.is_Number or rest.is_Number or abs(coeff) == 1:
        return None
    return abs(coeff)


def shared_weight_groups(terms) -> dict[sp.Expr, list[sp.Expr]]:
    """Terms of a sum grouped by a numeric weight that two or more of them share, in order of appearance.

    The printers (:mod:`optinv.codegen.printer`) sum each group first and scale it once,
    ``2*(a*b - c*d)`` rather than ``2*a*b - 2*c*d``; :func:`expr_flops` counts the same form.
    """
    members: dict[sp.Expr, list[sp.Expr]] = {}
    for term in terms:
        weight = shared_weight(term)
        if weight is not None:
            members.setdefault(weight, []).append(term)
    return {weight: group for weight, group in members.items() if len(group) > 1}


def expr_flops(expr: sp.Expr) -> int:
    """Additions and multiplications needed to evaluate ``expr`` as printed.

    A coefficient of -1 is free (it turns an addition into a subtraction);
    ``x**n`` costs ``n - 1`` multiplications; terms of a sum that share a
    numeric weight are summed first and scaled once (:func:`shared_weight_groups`).
    """
    if expr.is_Atom:
        return 0
    if expr.is_Add:
        groups = shared_weight_groups(expr.args)
        grouped = {id(term) for group in groups.values() for term in group}
        pieces = len(expr.args) - sum(len(group) - 1 for group in groups.values())
        flops = pieces - 1 + sum(len(group) for group in groups.values())  # inner additions + one scaling each
        for term in expr.args:
            flops += expr_flops(term.as_coeff_Mul()[1] if id(term) in grouped else term)
        return flops
    if expr.is_Mul:
        coeff, rest = expr.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        own = len(factors) - 1 + (0 if coeff in (1, -1) else 1)
        return own + sum(expr_flops(f) for f in factors)
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
        return int(expr.exp) - 1 + expr_flops(expr.base)
    raise ValueError(f"unsupported expression in a program: {expr}")


@dataclass
class Program:
    """Straight-line code: ``inputs`` (groups of symbols), ``statements`` and ``outputs``."""

    inputs: dict[str, list[sp.Symbol]]
    statements: list[tuple[sp.Symbol, sp.Expr]]
    outputs: list[sp.Expr]
    strategy: str = ""
    notes: dict = field(default_factory=dict)

    @property
    def flops(self) -> int:
        return sum(expr_flops(e) for _, e in self.statements) + sum(expr_flops(o) for o in self.outputs)

    @property
    def n_temporaries(self) -> int:
        return len(self.statements)

    def used_inputs(self) -> dict[str, list[int]]:
        """Indices of each input group that the program reads."""
        used = set()
        for _, e in self.statements:
            used |= e.free_symbols
        for o in self.outputs:
            used |= o.free_symbols
        return {name: [k for k, s in enumerate(syms) if s in used] for name, syms in self.inputs.items()}

    def evaluate(self, values: dict[str, list[float]]) -> list[float]:
        """Interpret the program on one row (slow; for tests and debugging)."""
        env = {}
        for name, syms in self.inputs.items():
            for s, v in zip(syms, values[name]):
                env[s] = v
        for t, e in self.statements:
            env[t] = e.xreplace(env) if not e.is_Atom else env.get(e, e)
        return [float(o.xreplace(env)) if not o.is_Number else float(o) for o in self.outputs]

    def report(self) -> str:
        return (
            f"Program ({self.strategy}): {len(self.outputs)} outputs, {self.n_temporaries} temporaries, "
            f"{self.flops} flops per row"
        )


def factor_common(expr: sp.Expr) -> sp.Expr:
    """Greedy Horner-style factoring of a sum: ``a*b + a*c + d -> a*(b + c) + d``.

    The symbol shared by the most terms is pulled out first (ties broken by name,
    so the result is deterministic), recursively on both parts.  It never adds
    operations (a factoring that would, because the sum as printed already shares a
    weight, is not taken) and usually removes many multiplications.
    """
    if not expr.is_Add:
        return expr
    terms = sp.Add.make_args(expr)
    counts: dict[sp.Symbol, int] = {}
    for term in terms:
        for sym in term.free_symbols:
            if _is_monomial_in(term, sym):
                counts[sym] = counts.get(sym, 0) + 1
    if not counts:
        return expr
    best = max(counts, key=lambda sym: (counts[sym], _name_key(sym)))
    if counts[best] < 2:
        return expr
    shared = [t for t in terms if best in t.free_symbols and _is_monomial_in(t, best)]
    rest = [t for t in terms if not (best in t.free_symbols and _is_monomial_in(t, best))]
    inner = factor_common(sp.Add(*[t / best for t in shared]))
    outer = factor_common(sp.Add(*rest)) if rest else sp.Integer(0)
    factored = sp.Mul(best, inner, evaluate=True) + outer
    return factored if expr_flops(factored) <= expr_flops(expr) else expr


def _name_key(sym: sp.Symbol):
    # prefer inputs and early temporaries: "x3" < "t12" by (prefix, number) reversed for max()
    name = sym.name
    digits = len(name) - len(name.lstrip("abcdefghijklmnopqrstuvwxyz_"))
    return (name[:digits], -int(name[digits:]) if name[digits:].isdigit() else 0)


def _is_monomial_in(term: sp.Expr, sym: sp.Symbol) -> bool:
    """``term`` is a product in which ``sym`` appears as a plain factor (possibly a power)."""
    if term == sym:
        return True
    if term.is_Pow:
        return term.base == sym
    if term.is_Mul:
        return any(f == sym or (f.is_Pow and f.base == sym) for f in term.args)
    return False


class ProgramBuilder:
    """Builds a program with hash-consing: an expression seen before reuses its temporary."""

    def __init__(self, input_names: list[str], sizes: dict[str, int], prefix: str = "t"):
        self.inputs = {name: list(sp.symbols(f"{name}0:{sizes[name]}", real=True)) for name in input_names}
        self.statements: list[tuple[sp.Symbol, sp.Expr]] = []
        self._memo: dict[sp.Expr, sp.Symbol] = {}
        self._prefix = prefix
        self._counter = 0

    def adopt(self, statements) -> None:
        """Start from existing statements (their temporaries stay valid and shareable)."""
        for t, e in statements:
            self.statements.append((t, e))
            self._memo.setdefault(e, t)
        self._counter = max(self._counter, _max_index(statements, self._prefix) + 1)

    def emit(self, expr: sp.Expr) -> sp.Expr:
        """Name a non-trivial expression; atoms and negated atoms stay inline."""
        expr = sp.sympify(expr)
        if expr.is_Add:
            expr = factor_common(expr)
        if expr.is_Add:
            # 2*a + 2*b -> 2*(a + b): one multiplication instead of one per term
            content, primitive = expr.as_content_primitive()
            if content != 1 and content.is_Integer and primitive.is_Add:
                return self.emit(content * self.emit(primitive))
        if expr.is_Atom or (expr.is_Mul and len(expr.args) == 2 and expr.args[0] == -1 and expr.args[1].is_Atom):
            return expr
        hit = self._memo.get(expr)
        if hit is not None:
            return hit
        neg = self._memo.get(-expr)
        if neg is not None:
            return -neg
        t = sp.Symbol(f"{self._prefix}{self._counter}", real=True)
        self._counter += 1
        self.statements.append((t, expr))
        self._memo[expr] = t
        return t

    def finish(self, outputs, strategy: str = "") -> Program:
        return eliminate_dead_code(Program(self.inputs, list(self.statements), list(outputs), strategy))


def _max_index(statements, prefix: str) -> int:
    best = -1
    for t, _ in statements:
        name = t.name
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            best = max(best, int(name[len(prefix):]))
    return best


def eliminate_dead_code(program: Program) -> Program:
    """Drop statements that no output depends on."""
    live = set()
    for o in program.outputs:
        live |= o.free_symbols
    kept = []
    for t, e in reversed(program.statements):
        if t in live:
            kept.append((t, e))
            live |= e.free_symbols
    kept.reverse()
    return Program(program.inputs, kept, program.outputs, program.strategy, dict(program.notes))


def reverse_mode(program: Program, wrt: str = "x", seed: str = "g") -> Program:
    """Vector-Jacobian product: outputs ``grad[d] = sum_k g_k dI_k/dx_d``."""
    n_out = len(program.outputs)
    sizes = {name: len(s) for name, s in program.inputs.items()} | {seed: n_out}
    b = ProgramBuilder(list(program.inputs) + [seed], sizes)
    b.inputs.update(program.inputs)
    b.adopt(program.statements)
    g = b.inputs[seed]
    adjoint_terms: dict[sp.Symbol, list[sp.Expr]] = defaultdict(list)
    for k, out in enumerate(program.outputs):
        for s in out.free_symbols:
            adjoint_terms[s].append(g[k] * sp.diff(out, s))
    for t, e in reversed(program.statements):
        terms = adjoint_terms.pop(t, None)
        if not terms:
            continue
        t_bar = b.emit(sp.Add(*terms))
        if t_bar == 0:
            continue
        for s in e.free_symbols:
            adjoint_terms[s].append(t_bar * sp.diff(e, s))
    grads = [b.emit(sp.Add(*adjoint_terms.get(s, []))) for s in program.inputs[wrt]]
    return b.finish(grads, strategy=f"{program.strategy}, reverse mode")


def forward_mode(program: Program, wrt: str = "x", tangent: str = "u") -> Program:
    """Directional derivative of every output along ``u`` (Jacobian-vector product)."""
    sizes = {name: len(s) for name, s in program.inputs.items()} | {tangent: len(program.inputs[wrt])}
    b = ProgramBuilder(list(program.inputs) + [tangent], sizes)
    b.inputs.update(program.inputs)
    b.adopt(program.statements)
    dot: dict[sp.Symbol, sp.Expr] = dict(zip(program.inputs[wrt], b.inputs[tangent]))

    def directional(e: sp.Expr) -> sp.Expr:
        return sp.Add(*[sp.diff(e, s) * dot[s] for s in e.free_symbols if s in dot])

    for t, e in program.statements:
        d = directional(e)
        if d != 0:
            dot[t] = b.emit(d)
    outs = [b.emit(directional(o)) for o in program.outputs]
    return b.finish(outs, strategy=f"{program.strategy}, forward mode")
