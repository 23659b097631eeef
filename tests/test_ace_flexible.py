"""ACE example: the flexible descriptor set (examples/ace/flexible_sets.py).

References are independent of the code under test where possible: the engine's own
``check_invariants`` for ranks on strata, a span argument for the linear basis (it reaches
every maximum), float Jacobians for ranks on the data, and the engine's float evaluator
for kernel values.  Fast (a few seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.ace.backends import PolynomialBackend, TorchEinsumBackend  # noqa: E402
from examples.ace.flexible_sets import flexible_set, stratum_ranks  # noqa: E402
from examples.ace.sets import DescriptorSet, independent_set, linear_ace_set  # noqa: E402
from optinv.algebra.evaluate import evaluate  # noqa: E402
from optinv.algebra.select import check_invariants  # noqa: E402
from optinv.algebra.strata import catalogue  # noqa: E402

SETTING = (2, 2, 3)  # channels s0 s1 v0 v1 q0 q1, at most 3 factors


@pytest.fixture(scope="module")
def sets():
    return {"linear": linear_ace_set(*SETTING), "independent": independent_set(*SETTING),
            "flexible": flexible_set(*SETTING)}


@pytest.fixture(scope="module")
def table(sets):
    return stratum_ranks(sets, catalogue(sets["linear"].signature))


def test_flexible_reaches_every_stratum_maximum(sets, table):
    flex = sets["flexible"]
    assert flex.info["complete"] and flex.info["every_stratum_at_max"]
    assert all(r["flexible"] == r["max"] for r in table)
    # the engine's own check of the same list agrees, stratum by stratum
    sig = flex.signature
    report = check_invariants([e[0] for e in flex.einsums], sig, strata=catalogue(sig), n_max=SETTING[2])
    assert report.complete and report.flexible
    assert [s.rank for s in report.strata] == [r["flexible"] for r in table]
    assert [s.max_rank for s in report.strata] == [r["max"] for r in table]


def test_generic_subset_misses_strata_that_flexible_keeps(sets, table):
    # the independent subset is complete at generic points but not on every stratum here
    assert table[0]["stratum"] == "generic" and table[0]["independent"] == table[0]["max"] == 2 * 9 - 3
    missed = [r["stratum"] for r in table if r["independent"] < r["max"]]
    assert missed, "expected the generic selection to lose rank on some stratum"
    # a set at every maximum has at least the generic count; here it needs more
    assert len(sets["flexible"]) > len(sets["independent"]) == sets["independent"].info["bound"]
    # the engine's check gives the same independent-set ranks as the product-rule path
    ind = sets["independent"]
    report = check_invariants([e[0] for e in ind.einsums], ind.signature, strata=catalogue(ind.signature),
                              n_max=SETTING[2])
    assert [s.rank for s in report.strata] == [r["independent"] for r in table]


def test_linear_basis_reaches_every_maximum(table):
    # every connected graph of degree <= nu_max is a linear combination of linear-basis members,
    # so their gradients span the same space: the product-rule ranks must hit every maximum
    assert all(r["linear"] == r["max"] for r in table)


def test_product_rule_ranks_against_float_jacobian(sets):
    # at generic float points the linear basis (products included) has Jacobian rank D - 3
    ds = sets["linear"]
    x = torch.as_tensor(np.random.default_rng(5).normal(size=(3, ds.signature.dim)))
    J = torch.func.jacrev(PolynomialBackend(ds))(x)  # (3, K, 3, D)
    for n in range(3):
        sv = torch.linalg.svdvals(J[n, :, n, :])
        assert int((sv > 1e-9 * sv[0]).sum()) == ds.signature.dim - 3


@pytest.mark.parametrize("backend_cls", [PolynomialBackend, TorchEinsumBackend])
def test_flexible_kernels_match_engine_on_random_rows(sets, backend_cls):
    ds = sets["flexible"]
    x = np.random.default_rng(7).normal(size=(11, ds.signature.dim))
    ref = evaluate(ds.connected, x, ds.signature)
    got = backend_cls(ds)(torch.as_tensor(x)).numpy()
    assert np.allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_flexible_codegen_kernel_matches_engine(sets, tmp_path):
    pytest.importorskip("optinv.codegen")
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    from examples.ace.backends import CodegenBackend

    ds = sets["flexible"]
    x = np.random.default_rng(8).normal(size=(5, ds.signature.dim))
    got = CodegenBackend(ds, out_dir=tmp_path)(torch.as_tensor(x)).numpy()
    ref = evaluate(ds.connected, x, ds.signature)
    assert np.allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_greedy_search_also_reaches_every_maximum(sets):
    greedy = flexible_set(*SETTING, search="greedy")
    assert greedy.info["every_stratum_at_max"] and greedy.info["complete"]
    assert len(greedy) >= len(sets["independent"])


def test_flexible_set_roundtrips_through_json(sets):
    ds = sets["flexible"]
    back = DescriptorSet.from_dict(ds.to_dict())
    assert back.einsums == ds.einsums and back.kind == "flexible" and back.info["every_stratum_at_max"]


def test_bad_input(sets):
    with pytest.raises(ValueError, match="search"):
        flexible_set(*SETTING, search="exhaustive-please")
    with pytest.raises(ValueError, match="same signature"):
        stratum_ranks({"a": sets["flexible"], "b": linear_ace_set(1, 1, 2)}, catalogue(sets["flexible"].signature))
