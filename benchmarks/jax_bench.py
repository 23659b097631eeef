"""The three ways to get the invariants in JAX on a CPU, side by side: which one to pick.

* ``jax-c-ffi``       the C kernel through the XLA FFI (``jax_ffi_invariants``: custom calls + ``custom_vjp``)
* ``jax-c-callback``  the C kernel through ``jax.pure_callback`` (``jax_c_invariants``, + ``custom_vjp``)
* ``jax-jit``         the straight-line ``jax.numpy`` target (``jax_invariants``), XLA-compiled
* ``c``               for reference, the C kernel through the NumPy API: ``forward(x)``; ``vjp(x, ones)``

XLA drops the unused forward from the jitted gradient of a sum (the FFI
program is one ``vjp`` custom call), so ``c``'s forward+backward is the one
``vjp`` call too.

Everything jitted, 1 thread (the C kernel's ``set_num_threads(1)``, XLA's
intra-op threads off), CPU time per call (``time.process_time``: the best of
repeated calls, so other tenants of a busy machine inflate it little).  For
(3,4) and (4,4), float32 and float64: ``forward`` (``f(x)``) and
``forward+backward`` (``jax.grad(lambda x: f(x).sum())``) at ``--n`` rows
(default 100000), and the same two per call at ``--small`` rows (default 10),
where the fixed cost of a call (dispatch, a Python round trip for the
callback) dominates.  The first call (tracing, XLA compilation, building the
FFI handlers if the cache is empty) is reported apart.

    .venv/bin/python benchmarks/jax_bench.py            # about 3 minutes on a busy 2-core machine
    .venv/bin/python benchmarks/jax_bench.py --quick    # N = 20000, shorter budgets

Results: ``benchmarks/results/<date>-<host>-jax.json`` with machine, versions and load average.
"""

from __future__ import annotations

import os

# one thread everywhere, before NumPy / XLA load
for _var, _val in (("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"),
                   ("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")):
    os.environ.setdefault(_var, _val)

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.peers.machine import cpu_info, versions  # noqa: E402
from benchmarks.targets_bench import cpu_time_per_call, log  # noqa: E402

PAIRS = ((3, 4), (4, 4))
DTYPES = ("float32", "float64")
METHODS = ("jax-c-ffi", "jax-c-callback", "jax-jit", "c")
ENTRY = {"jax-c-ffi": "jax_ffi_invariants", "jax-c-callback": "jax_c_invariants", "jax-jit": "jax_invariants"}


def grad_of_sum(module, name: str):
    """``(forward, forward+backward)``, jitted: ``f(x)`` and ``jax.grad(sum(f(x)))``."""
    import jax

    if name == "c":  # the same work on NumPy arrays: the forward, and the VJP with a cotangent of ones
        def vjp_of_ones(x):
            x = np.asarray(x)
            return module.vjp(x, np.ones((x.shape[0], module.K), x.dtype))

        return lambda x: module.forward(np.asarray(x)), vjp_of_ones
    f = getattr(module, ENTRY[name])
    fwd, grad = jax.jit(f), jax.jit(jax.grad(lambda x: f(x).sum()))
    return lambda x: fwd(x).block_until_ready(), lambda x: grad(x).block_until_ready()


def measure(n_big: int, n_small: int, pairs, dtypes, budget: float, min_reps: int) -> list[dict]:
    import jax

    # x64 globally, not the thread-local ``jax.enable_x64`` context: XLA may run a pure_callback on another
    # thread, where the context is off and JAX casts the callback's float64 results to float32 (then raises)
    jax.config.update("jax_enable_x64", True)
    records = []
    rng = np.random.default_rng(0)
    for l_max, n_max in pairs:
        module = importlib.import_module(f"optinv.generated.hop_l{l_max}_n{n_max}")
        module.set_num_threads(1)
        for dtype in dtypes:
            for n in (n_big, n_small):
                x = jax.numpy.asarray(rng.normal(size=(n, module.D)).astype(dtype))
                reference = {}  # mode -> the first method's result
                for name in METHODS:
                    for mode, fn in zip(("forward", "forward+backward"), grad_of_sum(module, name)):
                        rec = {"l_max": l_max, "n_max": n_max, "dtype": dtype, "n": n, "mode": mode,
                               "method": name}
                        t0 = time.process_time()
                        xin = np.asarray(x) if name == "c" else x
                        out = np.asarray(fn(xin))
                        rec["first_call_cpu_s"] = round(time.process_time() - t0, 3)
                        ref = reference.setdefault(mode, out)  # every method agrees before it is timed
                        tol = 1e-4 if dtype == "float32" else 1e-10
                        assert np.allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max()), (name, mode)
                        reps_min = min_reps if n == n_big else 50
                        sec, reps = cpu_time_per_call(lambda fn=fn, xin=xin: fn(xin), reps_min,
                                                      budget if n == n_big else budget / 4)
                        rec.update(cpu_s_per_call=sec, reps=reps, rows_per_s=n / sec)
                        records.append(rec)
                        log(f"({l_max},{n_max}) {dtype:7s} N={n:<7d} {mode:16s} {name:15s} "
                            f"{sec * 1e6:12.1f} us/call  {n / sec / 1e6:8.2f} Mrows/s  "
                            f"(first call {rec['first_call_cpu_s']:.2f} s CPU, {reps} reps)")
    return records


def ratios(records: list[dict]) -> list[dict]:
    """Each method's time over the FFI's, per (pair, dtype, n, mode): > 1 means the FFI is faster (c: < 1)."""
    out = []
    keys = sorted({(r["l_max"], r["n_max"], r["dtype"], r["n"], r["mode"]) for r in records})
    for key in keys:
        row = {r["method"]: r["cpu_s_per_call"] for r in records
               if (r["l_max"], r["n_max"], r["dtype"], r["n"], r["mode"]) == key}
        out.append({"l_max": key[0], "n_max": key[1], "dtype": key[2], "n": key[3], "mode": key[4],
                    **{f"{m}_over_ffi": round(row[m] / row["jax-c-ffi"], 3) for m in METHODS if m != "jax-c-ffi"}})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 20000 and shorter budgets")
    ap.add_argument("--n", type=int, help="rows per call for throughput (default 100000; --quick 20000)")
    ap.add_argument("--small", type=int, default=10, help="rows per call for latency (default 10)")
    ap.add_argument("--pairs", default="3,4;4,4")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--out", help="results JSON path")
    args = ap.parse_args(argv)
    n = args.n or (20_000 if args.quick else 100_000)
    pairs = [tuple(int(v) for v in p.split(",")) for p in args.pairs.split(";") if p]
    start = time.time()
    records = measure(n, args.small, pairs, [d for d in args.dtypes.split(",") if d],
                      budget=0.3 if args.quick else 1.0, min_reps=3 if args.quick else 5)
    vers = versions()
    for dist in ("jax", "jaxlib"):
        vers[dist] = version(dist)
    result = {"kind": "jax", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "host": socket.gethostname(), "machine": cpu_info(), "versions": vers, "loadavg": os.getloadavg(),
              "threads": 1, "timer": "time.process_time (CPU time, best per call)", "n": n, "n_small": args.small,
              "note": "every method jitted; forward+backward is jax.grad of sum(f(x)); ratios: time over jax-c-ffi's",
              "seconds": round(time.time() - start, 1), "records": records, "ratios": ratios(records)}
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / (
        f"{datetime.date.today()}-{socket.gethostname()}-jax{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out} ({result['seconds']} s)")
    for r in result["ratios"]:
        log(f"({r['l_max']},{r['n_max']}) {r['dtype']:7s} N={r['n']:<7d} {r['mode']:16s} time / FFI's: "
            f"callback {r['jax-c-callback_over_ffi']:6.2f}  jax-jit {r['jax-jit_over_ffi']:6.2f}  c {r['c_over_ffi']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
