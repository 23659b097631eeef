"""Programs: planning strategies, derivatives and factoring, checked against the engine's reference."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from optinv.algebra.evaluate import evaluate, gradient
from optinv.algebra.select import select_basis
from optinv.algebra.signature import Signature
from optinv.codegen.plan import plan_kernels
from optinv.codegen.plan import plan_contraction, plan_polynomial
from optinv.codegen.program import expr_flops, factor_common


@pytest.mark.parametrize("l_max, n_max", [(1, 2), (2, 4), (3, 3)])
def test_every_program_computes_its_reference(l_max, n_max):
    sig = Signature.from_l_max(l_max)
    graphs = select_basis(sig, n_max).graphs
    rng = np.random.default_rng(l_max)
    x = rng.normal(size=(1, sig.dim))
    g, u = rng.normal(size=len(graphs)), rng.normal(size=sig.dim)
    ref = evaluate(graphs, x, sig)[0]
    jac = gradient(graphs, x, sig)[0]
    for prog in (plan_contraction(graphs, sig), plan_polynomial(graphs, sig)):
        np.testing.assert_allclose(prog.evaluate({"x": list(x[0])}), ref, rtol=1e-12, atol=1e-12)
    k = plan_kernels(graphs, sig)
    np.testing.assert_allclose(k.vjp.evaluate({"x": list(x[0]), "g": list(g)}), g @ jac, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(k.jvp.evaluate({"x": list(x[0]), "u": list(u)}), jac @ u, rtol=1e-11, atol=1e-11)
    # hvp: derivative of g.J along u, by an exact stencil of the reference gradient (degree <= 3 in t)
    h = 0.5
    pts = [x + t * h * u for t in (-2, -1, 1, 2)]
    gj = [g @ gradient(graphs, p, sig)[0] for p in pts]
    hvp_ref = (gj[0] - 8 * gj[1] + 8 * gj[2] - gj[3]) / (12 * h)
    hvp = k.hvp.evaluate({"x": list(x[0]), "g": list(g), "u": list(u)})
    np.testing.assert_allclose(hvp, hvp_ref, rtol=1e-9, atol=1e-9 * np.abs(hvp_ref).max())


def test_the_cheaper_strategy_is_chosen_and_recorded():
    sig = Signature.from_l_max(3)
    graphs = select_basis(sig, 4).graphs
    k = plan_kernels(graphs, sig)
    strategies = k.forward.notes["strategies"]
    assert set(strategies) == {"contraction", "polynomial"}
    assert k.forward.flops == min(strategies.values())
    # sharing pays: the forward program costs less than evaluating every graph on its own
    assert k.forward.flops < sum(plan_contraction([g], sig).flops for g in graphs)


SYMS = sp.symbols("x0:5", real=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3).filter(bool), st.lists(st.sampled_from(SYMS), min_size=1, max_size=3)),
                min_size=1, max_size=8))
def test_factor_common_is_exact_and_never_costs_more(terms):
    expr = sp.Add(*[c * sp.Mul(*fs) for c, fs in terms])
    factored = factor_common(expr)
    assert sp.expand(factored - expr) == 0
    assert expr_flops(factored) <= expr_flops(expr)
