"""Planning: from a Request (and its Basis) to the cheapest straight-line programs.

:func:`make_plan` turns a :class:`~optinv.codegen.request.Request` into a
:class:`Plan`: the invariants (selected once, or parsed and certified), the
signature, and the four programs every target prints (forward, VJP, JVP, HVP).

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

from dataclasses import dataclass

from optinv.algebra.basis import Basis
from optinv.algebra.cartesian import LEVI_CIVITA, coefficient_map
from optinv.algebra.contraction_order import cheapest_merges
from optinv.algebra.errors import OptinvError
from optinv.algebra.evaluate import PRIME
from optinv.algebra.graphs import ContractionGraph
from optinv.algebra.flexible import DEFAULT_NODES, select_flexible_basis
from optinv.algebra.select import check_invariants, parse_einsum_list, select_basis
from optinv.algebra.strata import DEFAULT_STRATA_N_MAX, parse_strata_spec, stratum_report
from optinv.algebra.signature import EPSILON, Signature
from optinv.codegen.program import Program, ProgramBuilder, forward_mode, reverse_mode
from optinv.codegen.request import Request


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
        for A, B in cheapest_merges(g.multiplicity_matrix())[1]:
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


# -- the plan of a whole package -------------------------------------------------------------

KERNEL_NAMES = ("forward", "vjp", "jvp", "hvp")


@dataclass(frozen=True)
class KernelPrograms:
    """The four programs a module needs, all derived from one forward program."""

    forward: Program
    vjp: Program
    jvp: Program
    hvp: Program

    @property
    def flops(self) -> dict[str, int]:
        return {name: getattr(self, name).flops for name in KERNEL_NAMES}

    def by_name(self) -> dict[str, Program]:
        return {name: getattr(self, name) for name in KERNEL_NAMES}


def plan_kernels(graphs: list[ContractionGraph], signature: Signature) -> KernelPrograms:
    """Forward program (cheapest strategy) and its VJP, JVP and g-weighted HVP."""
    fwd = plan_forward(graphs, signature)
    vjp = reverse_mode(fwd)
    return KernelPrograms(forward=fwd, vjp=vjp, jvp=forward_mode(fwd), hvp=forward_mode(vjp))


@dataclass(frozen=True)
class Plan:
    """Everything a package is rendered from: request, invariants, their certificate, programs."""

    request: Request
    graphs: tuple[ContractionGraph, ...]
    certificate: dict  # rank, bound, complete, independent (per invariant), how certified
    programs: KernelPrograms

    @property
    def signature(self) -> Signature:
        return self.request.signature


def _certificate(rank: int, bound: int, independent: list[bool], strata, strata_n_max: int | None) -> dict:
    return {
        "rank": rank,
        "bound": bound,
        "complete": rank == bound,
        "independent": independent,
        "certificate": f"exact Jacobian rank mod {PRIME} at a random integer point",
        # ranks on degenerate strata beside the maximum with strata_n_max factors (optinv.algebra.strata)
        "flexible": bool(strata) and all(s.rank == s.max_rank for s in strata),
        "strata_n_max": strata_n_max,
        "strata": [s.to_dict() for s in strata],
    }


def _strata_report(graphs, sig: Signature, n_max: int, request: Request) -> tuple:
    """Ranks on the strata, unless the exhaustive maximum would be too costly (n_max beyond the default)."""
    if n_max > DEFAULT_STRATA_N_MAX and not request.flexible:
        return ()
    return stratum_report(graphs, sig, n_max, parse_strata_spec(request.strata, sig), request.selection_seed)


def make_plan(request: Request, basis: Basis | None = None) -> Plan:
    """Plan ``request``; a ``basis`` already selected for it is used as it is (never selected again).

    With ``n_max`` and no ``basis``, the basis is selected here, once (flexible
    when the request says so); with ``invariants``, the list is parsed and
    certified (rank, independence) as given.  Either way the certificate
    records the ranks on the degenerate strata.
    """
    sig = request.signature
    if basis is None and request.n_max is not None:
        if request.flexible:
            basis = select_flexible_basis(sig, request.n_max, parse_strata_spec(request.strata, sig),
                                          seed=request.selection_seed,
                                          max_nodes=DEFAULT_NODES if request.search_nodes is None else request.search_nodes)
        else:
            basis = select_basis(sig, request.n_max, seed=request.selection_seed)
    if basis is not None:
        if basis.signature != sig:
            raise OptinvError(f"basis: selected for {basis.signature.describe()}, not for {sig.describe()}")
        if request.invariants is not None and tuple(request.invariants) != tuple(basis.einsums):
            raise OptinvError("basis: its invariants differ from the request's")
        graphs = list(basis.graphs)
        ranks = [inv.rank_after for inv in basis.invariants]
        independent = [r > (ranks[k - 1] if k else 0) for k, r in enumerate(ranks)]
        strata = basis.strata or _strata_report(graphs, sig, basis.n_max, request)
        certificate = _certificate(basis.rank, basis.bound.bound, independent, strata, basis.n_max)
    else:
        graphs = [g for _, g in parse_einsum_list(list(request.invariants), sig)]
        n_max = max(g.degree for g in graphs) if graphs else 1
        strata = _strata_report(graphs, sig, n_max, request) if graphs else ()
        check = check_invariants([g.einsum for g in graphs], sig, seed=request.selection_seed)
        certificate = _certificate(check.rank, check.bound, [e.independent for e in check.entries], strata, n_max)
    if not graphs:
        raise OptinvError("invariants: expected at least one invariant to compile")
    return Plan(request, tuple(graphs), certificate, plan_kernels(graphs, sig))
