"""Planning: from contraction graphs to the cheapest straight-line forward program.

Two strategies, the cheaper (by flop count) wins:

* ``contraction``: each invariant is contracted pairwise in its cheapest order;
  every entry of every intermediate tensor is a temporary, and hash-consing
  shares identical intermediates across invariants (``q.q`` computed once) and
  equal entries within one (symmetric intermediates computed once).
* ``polynomial``: each invariant is expanded into a sparse polynomial over the
  coefficients, then sympy's ``cse`` shares common products.

>>> from optinv.algebra.signature import Signature
>>> from optinv.algebra.select import select_basis
>>> sig = Signature.from_l_max(1)
>>> prog = plan_forward(select_basis(sig, 2).graphs, sig)
>>> prog.flops
5
"""

from __future__ import annotations

import itertools

import sympy as sp

from optinv.algebra.cartesian import LEVI_CIVITA, coefficient_map
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.signature import EPSILON, Signature
from optinv.codegen.program import Program, ProgramBuilder


def contraction_order(mult) -> list[tuple[int, int]] | None:
    """The cheapest pairwise merge sequence (as in ``best_contraction_cost``), as node-subset bitmasks."""
    n = len(mult)
    if n == 1:
        return []
    full = (1 << n) - 1
    open_edges = [0] * (full + 1)
    for S in range(1, full + 1):
        open_edges[S] = sum(mult[a][b] for a in range(n) if S >> a & 1 for b in range(n) if not S >> b & 1)
    best = [0] * (full + 1)
    split = [0] * (full + 1)
    for S in range(1, full + 1):
        if S & (S - 1) == 0:
            continue
        low = S & -S
        cheapest = None
        A = (S - 1) & S
        while A:
            if A & low:
                B = S ^ A
                shared = (open_edges[A] + open_edges[B] - open_edges[S]) // 2
                c = best[A] + best[B] + 3 ** (open_edges[S] + shared)
                if cheapest is None or c < cheapest:
                    cheapest, split[S] = c, A
            A = (A - 1) & S
        best[S] = cheapest
    merges: list[tuple[int, int]] = []

    def walk(S: int) -> None:
        if S & (S - 1) == 0:
            return
        A = split[S]
        walk(A)
        walk(S ^ A)
        merges.append((A, S ^ A))

    walk(full)
    return merges


class _Tensor:
    """Entries of a (sub)contraction: open edge letters and a map from index tuples to expressions."""

    def __init__(self, letters: str, entries: dict[tuple[int, ...], sp.Expr]):
        self.letters = letters
        self.entries = entries


def _input_tensors(signature: Signature, b: ProgramBuilder) -> dict[str, dict[tuple[int, ...], sp.Expr]]:
    """Cartesian entries of each input tensor as expressions of the coefficient symbols."""
    x = b.inputs["x"]
    out = {}
    for spec, off in zip(signature.tensors, signature.offsets()):
        cmap = coefficient_map(spec.rank)
        entries = {}
        for idx in itertools.product(range(3), repeat=spec.rank):
            key = tuple(sorted(idx))
            if key not in entries:
                expr = sp.Add(*[int(c) * x[off + k] for k, c in enumerate(cmap[idx]) if c])
                entries[key] = b.emit(expr)
            entries[idx] = entries[key]
        out[spec.name] = entries
    eps = {idx: sp.Integer(int(LEVI_CIVITA[idx])) for idx in itertools.product(range(3), repeat=3)}
    out[EPSILON] = eps
    return out


def _merge(a: _Tensor, b_: _Tensor, keep: set[str], b: ProgramBuilder) -> _Tensor:
    shared = [c for c in a.letters if c in b_.letters and c not in keep]
    out_letters = "".join([c for c in a.letters if c not in shared] + [c for c in b_.letters if c not in shared])
    entries = {}
    for idx in itertools.product(range(3), repeat=len(out_letters)):
        fixed = dict(zip(out_letters, idx))
        terms = []
        for sidx in itertools.product(range(3), repeat=len(shared)):
            fixed.update(zip(shared, sidx))
            va = a.entries[tuple(fixed[c] for c in a.letters)]
            vb = b_.entries[tuple(fixed[c] for c in b_.letters)]
            if va != 0 and vb != 0:
                terms.append(va * vb)
        entries[idx] = b.emit(sp.Add(*terms))
    return _Tensor(out_letters, entries)


def plan_contraction(graphs: list[ContractionGraph], signature: Signature) -> Program:
    """Strategy ``contraction``: pairwise contractions with shared intermediates."""
    b = ProgramBuilder(["x"], {"x": signature.dim})
    inputs = _input_tensors(signature, b)
    outputs = []
    for g in graphs:
        nodes = {1 << i: _Tensor(sub, inputs[lab]) for i, (lab, sub) in enumerate(zip(g.labels, g.subscripts))}
        for A, B in contraction_order(g.multiplicity_matrix()):
            nodes[A | B] = _merge(nodes.pop(A), nodes.pop(B), set(), b)
        (result,) = nodes.values()
        outputs.append(b.emit(result.entries[()]))
    return b.finish(outputs, strategy="contraction")


def plan_polynomial(graphs: list[ContractionGraph], signature: Signature) -> Program:
    """Strategy ``polynomial``: expand each invariant to monomials, then ``sympy.cse``."""
    contracted = plan_contraction(graphs, signature)
    x = contracted.inputs["x"]
    polys: dict[sp.Symbol, sp.Poly] = {s: sp.Poly(s, *x, domain="ZZ") for s in x}

    def to_poly(e: sp.Expr) -> sp.Poly:
        if e in polys:
            return polys[e]
        if e.is_Number:
            return sp.Poly(e, *x, domain="ZZ")
        if e.is_Add:
            out = to_poly(e.args[0])
            for a in e.args[1:]:
                out = out + to_poly(a)
            return out
        if e.is_Mul:
            out = to_poly(e.args[0])
            for a in e.args[1:]:
                out = out * to_poly(a)
            return out
        if e.is_Pow and e.exp.is_Integer and e.exp > 0:
            return to_poly(e.base) ** int(e.exp)
        raise ValueError(f"not a polynomial expression: {e}")

    for t, e in contracted.statements:
        polys[t] = to_poly(e)
    expanded = [to_poly(o).as_expr() for o in contracted.outputs]
    replacements, reduced = sp.cse(expanded, symbols=sp.numbered_symbols("c", real=True), order="none")
    b = ProgramBuilder(["x"], {"x": signature.dim})
    b.inputs["x"] = list(x)
    rename = {}
    for sym, e in replacements:
        rename[sym] = b.emit(e.xreplace(rename))
    outputs = [b.emit(r.xreplace(rename)) for r in reduced]
    return b.finish(outputs, strategy="polynomial")


def plan_forward(graphs: list[ContractionGraph], signature: Signature, strategies=("contraction", "polynomial")) -> Program:
    """The cheaper of the strategies by flop count (ties go to the first listed)."""
    planners = {"contraction": plan_contraction, "polynomial": plan_polynomial}
    programs = [planners[s](graphs, signature) for s in strategies]
    best = min(programs, key=lambda p: p.flops)
    best.notes["strategies"] = {p.strategy: p.flops for p in programs}
    return best
