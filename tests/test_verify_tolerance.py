"""verify's tolerance is never below what the dtype represents (issue 12, case 2).

Reproducer: ``optinv verify hop_l2_n3`` failed ``invariance [c-f32]`` on a
correct module with ``0.0 vs 1.4e-45 (tolerance 1.58e-49)``: a rotation with
entries of 2.8e-45 rounds the rotated row to float32 subnormals.  The oracle's
rule (:mod:`optinv.verify.oracle`) takes the magnitude polynomial at
``|x| + tiny`` and adds ``flops * smallest_subnormal``; verify and
tests/codegen_harness.py share it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import optinv.testing as ot
from optinv.algebra.signature import Signature
from optinv.codegen import compile_request
from optinv.codegen.catalog import generated_dir

from optinv.generated import hop_l2_n3
from optinv.verify import verify_module
from optinv.verify.backends import all_backends
from optinv.verify.oracle import (INVARIANCE_RTOL, absolute_floor, floored_magnitude, module_flops, reference,
                                  tolerance)

SIG = Signature.from_dict(hop_l2_n3.METADATA["signature"])
C32 = next(b for b in all_backends() if b.name == "c-f32")

# the shrunk counterexample of the false alarm, as verify printed it
X = np.array([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.25, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
              [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
G = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 2.802596928649634e-45], [0.0, 2.802596928649634e-45, -1.0]])


def test_the_false_alarm_passes_under_the_oracle_rule():
    fn = lambda rows: C32(hop_l2_n3, "forward", rows)  # noqa: E731
    ot.assert_invariant(fn, SIG, X.astype(np.float32), G, rtol=INVARIANCE_RTOL["float32"],
                        atol=absolute_floor("float32", module_flops(hop_l2_n3, "forward")),
                        scale=floored_magnitude(hop_l2_n3.EINSUMS, SIG, "float32"))


def test_the_false_alarm_used_to_fail_without_the_floor():
    """The same comparison with the old rule (no floors) fails: the reproducer is real."""
    fn = lambda rows: C32(hop_l2_n3, "forward", rows)  # noqa: E731
    with pytest.raises(AssertionError, match="1.4"):
        ot.assert_invariant(fn, SIG, X.astype(np.float32), G, rtol=INVARIANCE_RTOL["float32"],
                            scale=lambda r: ot.magnitude_bound(hop_l2_n3.EINSUMS, SIG, r))


@pytest.mark.parametrize("name", ["hop_l2_n3", "hop_l2_n4"])
def test_verify_passes_the_modules_that_cried_wolf(name, tmp_path):
    """The issue's runs, on the same requests compiled afresh (so integrity holds whatever generated/ holds)."""
    request = json.loads((generated_dir() / name / "metadata.json").read_text())["request"]
    path = compile_request(request, name, tmp_path)
    report = verify_module(path, max_examples=100, seed=0, backends="c-f32", properties="invariance")
    assert report.ok, report.report()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["forward", "vjp", "jvp", "hvp"])
def test_no_tolerance_is_below_a_subnormal_quantum(op, dtype):
    """At zero and subnormal rows every tolerance is at least one quantum of the dtype."""
    graphs = ot.as_graphs(hop_l2_n3.EINSUMS, SIG)
    quantum = np.finfo(dtype).smallest_subnormal
    rng = np.random.default_rng(0)
    for x in (np.zeros((2, SIG.dim)), np.full((2, SIG.dim), quantum, dtype=dtype).astype(np.float64)):
        g, u = rng.normal(size=(2, len(graphs))), rng.normal(size=x.shape)
        ref = reference(op, graphs, SIG, x, g=g, u=u)
        tol = tolerance(op, graphs, SIG, x, g, u, dtype, ref, flops=module_flops(hop_l2_n3, op))
        assert np.all(tol >= quantum)


def test_the_floor_still_catches_a_real_error():
    """One wrong term of ordinary size is far above the floors: the oracle still fails it."""
    graphs = ot.as_graphs(hop_l2_n3.EINSUMS, SIG)
    x = np.random.default_rng(1).normal(size=(3, SIG.dim))
    ref = reference("forward", graphs, SIG, x)
    tol = tolerance("forward", graphs, SIG, x, None, None, "float32", ref, flops=module_flops(hop_l2_n3, "forward"))
    assert np.all(tol < 1e-3 * np.maximum(np.abs(ref), 1e-3))
