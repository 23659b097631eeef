"""The benchmark harness: its timing rule, its roofline, and that every method computes what it claims.

The registry's methods are checked against independent references: optinv's
NumPy einsum evaluator for the values, and central differences of the float64
forward for the forward+backward (vjp) results.  ``hippynn-compiled`` is left
out here (compiling takes tens of seconds); the benchmark run itself checks it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import methods as M  # noqa: E402
from benchmarks.run import bounds, reference_values  # noqa: E402
from benchmarks.timing import measure  # noqa: E402
from optinv.algebra.select import select_basis  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402

MACHINE = {
    "caches": {"L2": {"bytes": 1 << 20}, "last_level_bytes": 32 << 20},
    "peak_gflops": {"float32": {"1": 200.0, "2": 10.0}, "float64": {"1": 100.0, "2": 10.0}},
    "bandwidth_gbs": {"1": {"L2": {"gbs": 200.0}, "LLC": {"gbs": 100.0}, "DRAM": {"gbs": 40.0}},
                      "2": {"L2": {"gbs": 1.0}, "LLC": {"gbs": 1.0}, "DRAM": {"gbs": 70.0}}},
}


def test_measure_takes_the_minimum_number_of_samples_and_orders_its_statistics():
    calls = []
    res = measure(lambda: calls.append(sum(range(2000))), "cpu", min_samples=12, min_total=0.0)
    assert res["samples"] >= 12
    assert len(calls) == 2 + res["samples"] * res["calls_per_sample"]  # two warm-up calls, then the samples
    assert res["min_s"] <= res["q1_s"] <= res["median_s"] <= res["q3_s"] <= res["max_s"]


def test_measure_rejects_an_unknown_clock():
    with pytest.raises(KeyError):
        measure(lambda: None, "sundial")


@pytest.mark.parametrize("working_set, level", [(1 << 19, "L2"), (8 << 20, "LLC"), (256 << 20, "DRAM")])
def test_roofline_picks_the_level_the_working_set_fits_in(working_set, level):
    b = bounds(MACHINE, "float32", 1, 400, 100, working_set)
    assert b["level"] == level
    bw = MACHINE["bandwidth_gbs"]["1"][level]["gbs"]
    assert b["bandwidth_bound_rows_s"] == pytest.approx(bw * 1e9 / 100)
    assert b["compute_bound_rows_s"] == pytest.approx(200e9 / 400)
    assert b["bound_rows_s"] == min(b["bandwidth_bound_rows_s"], b["compute_bound_rows_s"])
    assert b["bound"] == ("compute" if b["compute_bound_rows_s"] < b["bandwidth_bound_rows_s"] else "bandwidth")


def test_roofline_at_two_threads_never_uses_a_busy_machines_low_measurement():
    b = bounds(MACHINE, "float64", 2, 100, 100, 8 << 20)
    assert b["compute_bound_rows_s"] == pytest.approx(2 * 100e9 / 100)  # twice the 1-thread peak, not the 10 measured
    assert b["bandwidth_gbs"] == 100.0  # the 1-thread LLC figure beats the 1.0 measured with 2 threads
    assert "compute_bound_rows_s" not in bounds(MACHINE, "float64", 1, None, 100, 8 << 20)


def _fd_vjp(forward, x, g, h=1e-6):
    """g . dI/dx by central differences of a float64 forward, one input column at a time."""
    out = np.zeros_like(x)
    for d in range(x.shape[1]):
        e = np.zeros_like(x)
        e[:, d] = h
        out[:, d] = np.sum(g * (forward(x + e) - forward(x - e)), axis=1) / (2 * h)
    return out


@pytest.mark.parametrize("name", [n for n in M.REGISTRY if n != "hippynn-compiled"])
def test_every_method_computes_its_invariants_and_their_vjp(name):
    sig = Signature.from_l_max(3)
    ctx = M.Context(3, 4, sig, select_basis(sig, 4), "float64")
    try:
        n_out, _, prepare = M.REGISTRY[name].build(ctx)
    except M.Unavailable as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, sig.dim))  # 37: a full block and a padded tail for the C kernels
    g = rng.standard_normal((37, n_out))
    ref = reference_values(ctx, x)[M.REGISTRY[name].invariants]
    p = prepare(x, g)
    np.testing.assert_allclose(np.asarray(p.values()), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    fwd_bwd = p.forward_backward()
    grad = fwd_bwd[0] if isinstance(fwd_bwd, tuple) else fwd_bwd
    grad = grad.detach().numpy() if hasattr(grad, "detach") else np.asarray(grad)

    def forward(rows):
        return np.asarray(prepare(rows, g).values())

    expected = _fd_vjp(forward, x, g)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_bad_method_name_is_refused():
    from benchmarks.run import main

    with pytest.raises(SystemExit) as exc:
        main(["--methods", "optinv,no-such-method"])
    assert exc.value.code == 2


def test_paired_roofline_pairs_the_kernel_with_a_copy_taken_beside_it():
    """Tiny run: every pair has its own copy figure; the fraction is the kernel's bytes over the copy's."""
    import importlib

    from benchmarks import paired_roofline
    from benchmarks.peers import machine

    module = importlib.import_module("optinv.generated.hop_l2_n3")
    rec = paired_roofline.paired(module, np.dtype(np.float32), 1, rows=4096, pairs=3, reuse_out=False,
                                 copy=machine.copy_library(), llc_bytes=1 << 20)
    assert rec["bytes_per_row"] == (module.D + module.K) * 4 and rec["output"] == "allocated"
    assert len(rec["samples"]) == 3 and 1 <= rec["pairs_kept"] <= 3
    for s in rec["samples"]:
        assert s["copy_gbs"] == max(s["plain_copy_gbs"], s["streaming_copy_gbs"]) > 0
        assert s["fraction"] == pytest.approx(s["kernel_gbs"] / s["copy_gbs"])
        assert s["kept"] == (s["copy_gbs"] >= 0.8 * rec["best_copy_gbs"])
    kept = sorted(s["fraction"] for s in rec["samples"] if s["kept"])
    assert rec["min_fraction"] == kept[0] and rec["max_fraction"] == kept[-1]


def test_vector_pipes_times_each_kind_and_pair_or_says_it_cannot():
    """Tiny run: every kind and pair gets a positive rate, bounded by what one core can issue."""
    from benchmarks import vector_pipes

    source = vector_pipes.source([["_mm512_add_ps(v{i}, d)"]])
    assert source.count("v0 = _mm512_add_ps(v0, d);") == 1 and "pipes_test_0" in source
    result = vector_pipes.measure(iterations=20_000, repeats=1)
    if result is None:  # no AVX-512 here: nothing is timed, and the script writes nothing
        assert not vector_pipes.source([]).count("pipes_test_")
        return
    rates = result["instructions_per_cycle"]
    assert len(rates) == len(vector_pipes.KINDS) + len(vector_pipes.PAIRS)
    assert all(0 < r < 16 for r in rates.values()) and result["clock_ghz"] > 0
