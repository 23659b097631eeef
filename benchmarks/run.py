"""One benchmark run: the generated C kernel against its peers, side by side, in one process.

For (l_max, n_max) in (2,4), (3,4), (4,4), rows N from 10^3 to 10^6, float32
and float64, forward and forward+backward (forward then vjp with a random
cotangent ``g``), it times

* ``optinv``          the generated C kernel for optinv's basis (``optinv.generated.hop_l{L}_n{N}``), 1 and 2 threads
* ``optinv-h13``      the generated C kernel for HIP-HOP-NN's own 13 invariants (``hippynn_default``), (3,4) only
* ``hippynn``         hippynn's ``calc_invariants`` on PyTorch CPU, same thread counts, l_max <= 3
* ``numpy-ref``       optinv's NumPy einsum reference evaluator (1 thread)
* ``sparse-poly``     every invariant of optinv's basis expanded to monomials, evaluated monomial by monomial in C
* ``sparse-poly-h13`` the same for HIP-HOP-NN's 13 invariants (the GPU variant's actual polynomials), (3,4) only

and measures this machine's peak FMA rate and copy bandwidth in the same run.
Timing: one warm-up call, then best of k calls, k adapted to N so the full
run fits in about ten minutes on two cores (``--quick``: about a minute).

    .venv/bin/python benchmarks/run.py            # full run -> benchmarks/results/<date>-<host>.json/.png
    .venv/bin/python benchmarks/run.py --quick    # smoke run -> ...-quick.json/.png

See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import os

# Before NumPy/PyTorch load: NumPy's einsum does not thread, keep OpenBLAS from doing so behind our back,
# and keep hippynn quiet about custom kernels it cannot use on this machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.peers import generated as gen_peer  # noqa: E402
from benchmarks.peers import hippynn_peer, machine, numpy_ref  # noqa: E402
from benchmarks.peers.sparse_poly import HIPPYNN_13, SparsePolyKernel, hippynn_einsums  # noqa: E402
from optinv.algebra.graphs import ContractionGraph  # noqa: E402
from optinv.algebra.select import select_basis  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402

HERE = Path(__file__).resolve().parent
PAIRS = ((2, 4), (3, 4), (4, 4))
SIZES = (1_000, 10_000, 100_000, 200_000, 1_000_000)
QUICK_SIZES = (1_000, 20_000)
DTYPES = ("float32", "float64")
MODES = ("forward", "forward+backward")
METHODS = ("optinv", "optinv-h13", "hippynn", "numpy-ref", "sparse-poly", "sparse-poly-h13")


def log(msg: str) -> None:
    print(msg, flush=True)


# -- timing -------------------------------------------------------------------------------------


def best_of(fn, budget: float, max_reps: int = 50) -> tuple[float, int]:
    """One warm-up call, then repeat until ``budget`` seconds are spent (at least one timed call); best time."""
    fn()
    t0 = time.perf_counter()
    fn()
    best = time.perf_counter() - t0
    reps, spent = 1, best
    while reps < max_reps and spent + best <= budget:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        reps += 1
    return best, reps


# -- methods ------------------------------------------------------------------------------------


class Method:
    """A method at one (l_max, n_max): how to set threads, prepare calls for given rows, and its flops."""

    name: str
    threads: tuple[int, ...]
    flops: tuple[int | None, int | None] = (None, None)
    n_out: int

    def set_threads(self, t: int) -> None:  # pragma: no cover - overridden
        pass

    def calls(self, x: np.ndarray, g: np.ndarray):
        """(forward, forward+backward) zero-argument callables on these rows."""
        raise NotImplementedError

    def values(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ModuleMethod(Method):
    """A C kernel with the generated-module API: forward(x, out=), vjp(x, g, out=), set_num_threads."""

    def __init__(self, name, module, n_out, threads, flops):
        self.name, self.mod, self.n_out, self.threads, self.flops = name, module, n_out, threads, flops

    def set_threads(self, t):
        self.mod.set_num_threads(t)

    def calls(self, x, g):
        out = np.empty((x.shape[0], self.n_out), dtype=x.dtype)
        gx = np.empty_like(x)
        fwd = lambda: self.mod.forward(x, out=out)  # noqa: E731
        vjp = self.mod.vjp

        def fwd_bwd():
            fwd()
            vjp(x, g, out=gx)

        return fwd, fwd_bwd

    def values(self, x):
        return np.asarray(self.mod.forward(x))


class HippynnMethod(Method):
    def __init__(self, l_max, n_max, threads):
        self.name, self.threads, self.l_max, self.n_max = "hippynn", threads, l_max, n_max
        self.n_out = len(hippynn_einsums(l_max, n_max))
        self._peers = {}

    def peer(self, dtype):
        key = str(np.dtype(dtype))
        if key not in self._peers:
            self._peers[key] = hippynn_peer.HippynnPeer(self.l_max, self.n_max, key)
        return self._peers[key]

    def set_threads(self, t):
        import torch

        torch.set_num_threads(t)

    def calls(self, x, g):
        import torch

        p = self.peer(x.dtype)
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)
        return (lambda: p.forward(xt)), (lambda: p.forward_backward(xt, gt))

    def values(self, x):
        import torch

        return self.peer(x.dtype).forward(torch.from_numpy(x)).numpy()


class NumpyMethod(Method):
    def __init__(self, graphs, sig):
        self.name, self.threads, self.graphs, self.sig, self.n_out = "numpy-ref", (1,), graphs, sig, len(graphs)

    def set_threads(self, t):
        pass

    def calls(self, x, g):
        def fwd_bwd():
            numpy_ref.forward(self.graphs, x, self.sig)
            numpy_ref.vjp(self.graphs, x, g, self.sig)

        return (lambda: numpy_ref.forward(self.graphs, x, self.sig)), fwd_bwd

    def values(self, x):
        return numpy_ref.forward(self.graphs, x, self.sig)


def build_methods(l_max, n_max, sig, basis, wanted, threads, notes) -> tuple[list[Method], dict]:
    """Methods available at (l_max, n_max), and static facts (counts, flops) for the record."""
    methods: list[Method] = []
    info: dict = {"einsums": basis.einsums, "K": len(basis), "D": sig.dim}
    h13 = (l_max, n_max) == (3, 4)
    if "optinv" in wanted or ("optinv-h13" in wanted and h13):
        for mname, target, name in (("optinv", basis, f"hop_l{l_max}_n{n_max}"), ("optinv-h13", list(HIPPYNN_13), "hippynn_default")):
            if mname not in wanted or (mname == "optinv-h13" and not h13):
                continue
            try:
                mod = gen_peer.load_generated(name, target, sig)
                flops = gen_peer.metadata_flops(gen_peer.module_metadata(mod))
                k = len(basis) if mname == "optinv" else 13
                methods.append(ModuleMethod(mname, mod, k, threads, flops))
                info[f"{mname}_flops"] = {"forward": flops[0], "vjp": flops[1]}
            except gen_peer.Unavailable as exc:
                notes.append(f"{mname} skipped: {exc}")
            except Exception as exc:  # noqa: BLE001 - a broken module must not sink the whole run
                notes.append(f"{mname} ({name}) skipped: {type(exc).__name__}: {exc}")
    if "hippynn" in wanted:
        why = hippynn_peer.available()
        if why:
            notes.append(f"hippynn skipped: {why}")
        elif (l_max, n_max) in hippynn_peer.SUPPORTED:
            methods.append(HippynnMethod(l_max, n_max, threads))
            info["hippynn_K"] = len(hippynn_einsums(l_max, n_max))
        else:
            notes.append(f"hippynn: calc_invariants does not support l_max={l_max} (l_max <= 3 only)")
    if "numpy-ref" in wanted:
        methods.append(NumpyMethod(basis.graphs, sig))
    for mname, einsums in (("sparse-poly", basis.einsums), ("sparse-poly-h13", list(HIPPYNN_13))):
        if mname not in wanted or (mname == "sparse-poly-h13" and not h13):
            continue
        t0 = time.perf_counter()
        kern = SparsePolyKernel(einsums, sig, name=f"{'h13' if mname.endswith('h13') else 'opt'}_l{l_max}_n{n_max}")
        fl = kern.metadata["flops"]
        methods.append(ModuleMethod(mname, kern, kern.n_out, threads, (fl["forward"], fl["vjp"])))
        info[mname] = {**kern.program.summary(), "build_s": round(time.perf_counter() - t0, 2)}
    return methods, info


# -- checks -------------------------------------------------------------------------------------


def check_values(methods, l_max, n_max, sig, basis, rng) -> dict:
    """Max relative deviation of each method's forward from the NumPy reference of its own invariants."""
    x = rng.standard_normal((1000, sig.dim))
    refs = {"opt": numpy_ref.forward(basis.graphs, x, sig)}
    if (l_max, n_max) in hippynn_peer.SUPPORTED:
        hg = [ContractionGraph.from_einsum(e, sig) for e in hippynn_einsums(l_max, n_max)]
        refs["hip"] = numpy_ref.forward(hg, x, sig)
    out = {}
    for m in methods:
        which = "hip" if m.name in ("hippynn", "optinv-h13", "sparse-poly-h13") else "opt"
        if which not in refs:
            continue
        for dt in DTYPES:
            try:
                got = m.values(x.astype(dt)).astype(np.float64)
                ref = refs[which]
                err = float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0))))
            except Exception as exc:  # noqa: BLE001
                err = f"{type(exc).__name__}: {exc}"
            out[f"{m.name}/{dt}"] = err
    return out


# -- the run ------------------------------------------------------------------------------------


def run(args) -> dict:
    t_start = time.perf_counter()
    threads = tuple(args.threads)
    quick = args.quick
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if quick else SIZES)
    budget = args.budget if args.budget is not None else (0.02 if quick else 0.25)
    max_call = args.max_call if args.max_call is not None else (0.5 if quick else 6.0)
    rng = np.random.default_rng(12345)

    if args.wait_quiet:
        deadline = time.time() + args.wait_quiet
        while os.getloadavg()[0] > 0.5 and time.time() < deadline:
            log(f"waiting for a quiet machine: load average {os.getloadavg()[0]:.2f}")
            time.sleep(15)
    load0 = os.getloadavg()
    log(f"machine: measuring peak FMA rate and copy bandwidth (load average {load0[0]:.2f})")
    mach = machine.measure_machine(threads, quick=quick)
    mach["loadavg_start"] = load0
    notes: list[str] = []
    pk = mach["peak_gflops"]["float32"]
    if "1" in pk and "2" in pk:
        eff = pk["2"] / (2 * pk["1"])
        mach["two_thread_peak_efficiency"] = eff
        if eff < 0.75:
            notes.append(
                f"2-thread peak is only {eff:.0%} of twice the 1-thread peak: the two CPUs are busy with other "
                "work or share one core; 2-thread figures in this run are not trustworthy"
            )
    if load0[0] > 0.5:
        notes.append(f"load average {load0[0]:.2f} at start: other processes competed for the cores")
    log(
        "  peak GFLOP/s f32 "
        + ", ".join(f"{t}t {v:.1f}" for t, v in mach["peak_gflops"]["float32"].items())
        + "; f64 "
        + ", ".join(f"{t}t {v:.1f}" for t, v in mach["peak_gflops"]["float64"].items())
        + f"; copy GB/s "
        + ", ".join(f"{t}t {v:.1f}" for t, v in mach["bandwidth_gbs"]["copy"].items())
        + f"; memcpy {mach['bandwidth_gbs']['memcpy']:.1f}"
    )
    for note in notes:
        log(f"  warning: {note}")

    records: list[dict] = []
    configs: dict = {}
    checks: dict = {}
    for l_max, n_max in args.pairs:
        sig = Signature.from_l_max(l_max)
        basis = select_basis(sig, n_max)
        methods, info = build_methods(l_max, n_max, sig, basis, set(args.methods), threads, notes)
        key = f"l{l_max}_n{n_max}"
        configs[key] = info
        checks[key] = check_values(methods, l_max, n_max, sig, basis, rng)
        log(f"\n(l_max={l_max}, n_max={n_max}): D={sig.dim}, K={len(basis)}; methods: {', '.join(m.name for m in methods)}")
        for dt in args.dtypes:
            itemsize = np.dtype(dt).itemsize
            for m in methods:
                for t in m.threads:
                    m.set_threads(t)
                    too_slow = {mode: False for mode in MODES}
                    last = {}
                    for n in sizes:
                        x = rng.standard_normal((n, sig.dim)).astype(dt)
                        g = rng.standard_normal((n, m.n_out)).astype(dt)
                        calls = dict(zip(MODES, m.calls(x, g)))
                        for mode in MODES:
                            rec = {
                                "l_max": l_max, "n_max": n_max, "D": sig.dim, "K": m.n_out, "dtype": dt,
                                "method": m.name, "threads": t, "n_rows": n, "mode": mode,
                            }
                            if too_slow[mode] or (mode in last and last[mode][0] * n / last[mode][1] > max_call):
                                too_slow[mode] = True
                                rec["skipped"] = f"projected call time > {max_call} s"
                                records.append(rec)
                                continue
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                best, reps = best_of(calls[mode], budget)
                            last[mode] = (best, n)
                            fl_f, fl_b = m.flops
                            flops = fl_f if mode == "forward" else (fl_f + fl_b if fl_f is not None and fl_b is not None else None)
                            elems = (sig.dim + m.n_out) if mode == "forward" else (3 * sig.dim + 2 * m.n_out)
                            rps = n / best
                            rec.update(seconds=best, reps=reps, rows_per_s=rps, flops_per_row=flops,
                                       bytes_per_row=elems * itemsize)
                            if flops is not None:
                                rec["gflops"] = flops * rps / 1e9
                            records.append(rec)
                        del x, g, calls
                    done = [r for r in records if r["method"] == m.name and r["threads"] == t and r["dtype"] == dt
                            and r["l_max"] == l_max and "rows_per_s" in r]
                    line = "  ".join(f"{r['n_rows']:.0e}:{r['rows_per_s']:.3g}" for r in done if r["mode"] == "forward")
                    log(f"  {dt} {m.name:16s} {t}t  fwd rows/s  {line}")
    add_ratios(records)
    mach["loadavg_end"] = os.getloadavg()
    # Measure the machine again and keep the better of the two: other processes on the cores lower a
    # measured peak, and a peak measured too low would inflate every fraction below.
    log("\nmachine: measuring again at the end")
    again = machine.measure_machine(threads, quick=quick)
    mach["start"] = {"peak_gflops": mach["peak_gflops"], "bandwidth_gbs": mach["bandwidth_gbs"]}
    mach["end"] = {"peak_gflops": again["peak_gflops"], "bandwidth_gbs": again["bandwidth_gbs"]}
    mach["peak_gflops"] = {
        k: ({t: max(v[t], again["peak_gflops"][k][t]) for t in v} if isinstance(v, dict) else v)
        for k, v in mach["peak_gflops"].items()
    }
    bw0, bw1 = mach["bandwidth_gbs"], again["bandwidth_gbs"]
    mach["bandwidth_gbs"] = {**bw0, "memcpy": max(bw0["memcpy"], bw1["memcpy"]),
                             "copy": {t: max(bw0["copy"][t], bw1["copy"][t]) for t in bw0["copy"]}}
    pk = mach["peak_gflops"]["float32"]
    if "1" in pk and "2" in pk:
        mach["two_thread_peak_efficiency"] = pk["2"] / (2 * pk["1"])
    add_fractions(records, mach)
    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": quick,
        "machine": mach,
        "versions": machine.versions(),
        "settings": {"pairs": [list(p) for p in args.pairs], "sizes": list(sizes), "dtypes": list(args.dtypes),
                     "threads": list(threads), "methods": list(args.methods), "budget_s": budget,
                     "max_call_s": max_call, "timing": "1 warm-up call, then best of k (k until budget_s spent)"},
        "configs": configs,
        "checks_max_rel_err_vs_numpy_ref": checks,
        "notes": notes,
        "records": records,
        "summary": summarise(records),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    return result


def add_fractions(records, mach) -> None:
    """``frac_peak`` (GFLOP/s over the measured peak) and ``frac_bandwidth`` (bytes/s over the copy bandwidth)."""
    for r in records:
        if "rows_per_s" not in r:
            continue
        t = str(r["threads"])
        if r.get("gflops") is not None:
            r["frac_peak"] = r["gflops"] / mach["peak_gflops"][r["dtype"]][t]
        r["frac_bandwidth"] = r["rows_per_s"] * r["bytes_per_row"] / (mach["bandwidth_gbs"]["copy"][t] * 1e9)


def add_ratios(records) -> None:
    """``ratio_to_hippynn``: rows/s over hippynn's at the same (l_max, n_max, dtype, threads, N, mode)."""
    hip = {
        (r["l_max"], r["n_max"], r["dtype"], r["threads"], r["n_rows"], r["mode"]): r["rows_per_s"]
        for r in records if r["method"] == "hippynn" and "rows_per_s" in r
    }
    for r in records:
        h = hip.get((r["l_max"], r["n_max"], r["dtype"], r["threads"], r["n_rows"], r["mode"]))
        if h and "rows_per_s" in r:
            r["ratio_to_hippynn"] = r["rows_per_s"] / h


def summarise(records) -> dict:
    """Headline (3,4) float32 N=2e5, and linearity: time per row at the largest N over that at 1e4."""
    head = {}
    for r in records:
        if (r["l_max"], r["n_max"], r["dtype"], r["n_rows"]) == (3, 4, "float32", 200_000) and "rows_per_s" in r:
            head[f"{r['method']}/{r['threads']}t/{r['mode']}"] = {
                k: r.get(k) for k in ("rows_per_s", "ratio_to_hippynn", "gflops", "frac_peak", "frac_bandwidth")
            }
    linear = {}
    groups: dict = {}
    for r in records:
        if "rows_per_s" in r:
            groups.setdefault((r["l_max"], r["n_max"], r["dtype"], r["method"], r["threads"], r["mode"]), []).append(r)
    for k, rs in groups.items():
        by_n = {r["n_rows"]: r["seconds"] / r["n_rows"] for r in rs}
        big = max(by_n)
        if 10_000 in by_n and big > 10_000:
            linear["l{}_n{}/{}/{}/{}t/{}".format(*k)] = {"n_max_rows": big, "per_row_time_ratio": by_n[big] / by_n[10_000]}
    return {"l3_n4_float32_N2e5": head, "linearity_vs_1e4": linear}


def print_table(result) -> None:
    """rows/s at N = 2e5 (or the largest N run) per (l_max, n_max, dtype, mode) and method/threads."""
    recs = [r for r in result["records"] if "rows_per_s" in r]
    if not recs:
        return
    sizes = sorted({r["n_rows"] for r in recs})
    n_show = 200_000 if 200_000 in sizes else sizes[-1]
    log(f"\nrows/s at N = {n_show:.0e} (ratio to hippynn; fraction of peak flops; fraction of copy-bandwidth bound)")
    keys = sorted({(r["l_max"], r["n_max"], r["dtype"], r["mode"]) for r in recs})
    for key in keys:
        log(f"  l_max={key[0]} n_max={key[1]} {key[2]} {key[3]}")
        for r in recs:
            if (r["l_max"], r["n_max"], r["dtype"], r["mode"]) == key and r["n_rows"] == n_show:
                ratio = f"x{r['ratio_to_hippynn']:.2f}" if "ratio_to_hippynn" in r else "-"
                fp = f"{r['frac_peak']:.3f} peak" if "frac_peak" in r else ""
                log(f"    {r['method']:16s} {r['threads']}t  {r['rows_per_s']:11.4g}  {ratio:>8s}  "
                    f"{(r['flops_per_row'] or 0):6d} fl/row  {fp:>11s}  {r['frac_bandwidth']:.3f} bw")


def markdown(result, n_rows: int = 200_000) -> str:
    """Markdown tables of rows/s at ``n_rows`` (ratio to hippynn, fractions) per (l_max, n_max, dtype)."""
    recs = [r for r in result["records"] if "rows_per_s" in r and r["n_rows"] == n_rows]
    m = result["machine"]
    lines = [
        f"Run {result['date']} on {m['cpu_model']} ({m['usable_cpus']} CPUs), load average "
        f"{m['loadavg_start'][0]:.2f} at start; peak GFLOP/s float32 "
        + ", ".join(f"{t} thr {v:.0f}" for t, v in m["peak_gflops"]["float32"].items())
        + ", float64 " + ", ".join(f"{t} thr {v:.0f}" for t, v in m["peak_gflops"]["float64"].items())
        + "; copy bandwidth GB/s " + ", ".join(f"{t} thr {v:.1f}" for t, v in m["bandwidth_gbs"]["copy"].items())
        + f". N = {n_rows:.0e} rows.",
        "",
    ]
    for key in sorted({(r["l_max"], r["n_max"], r["dtype"]) for r in recs}):
        lines += [f"**l_max={key[0]}, n_max={key[1]}, {key[2]}**", "",
                  "| method | threads | fwd rows/s | x hippynn | fwd+bwd rows/s | x hippynn | flops/row fwd, fwd+bwd | fwd frac. peak | fwd frac. bandwidth |",
                  "|---|---|---|---|---|---|---|---|---|"]
        sel = [r for r in recs if (r["l_max"], r["n_max"], r["dtype"]) == key]
        for meth, t in sorted({(r["method"], r["threads"]) for r in sel}, key=lambda mt: (METHODS.index(mt[0]), mt[1])):
            f = next((r for r in sel if (r["method"], r["threads"], r["mode"]) == (meth, t, "forward")), {})
            b = next((r for r in sel if (r["method"], r["threads"], r["mode"]) == (meth, t, "forward+backward")), {})

            def fmt(v, spec):
                return format(v, spec) if isinstance(v, (int, float)) else "-"

            lines.append(
                f"| {meth} | {t} | {fmt(f.get('rows_per_s'), '.3g')} | {fmt(f.get('ratio_to_hippynn'), '.1f')} | "
                f"{fmt(b.get('rows_per_s'), '.3g')} | {fmt(b.get('ratio_to_hippynn'), '.1f')} | "
                f"{fmt(f.get('flops_per_row'), 'd')}, {fmt(b.get('flops_per_row'), 'd')} | "
                f"{fmt(f.get('frac_peak'), '.2f')} | {fmt(f.get('frac_bandwidth'), '.2f')} |"
            )
        lines.append("")
    if result["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (~1 minute): two small N, short budgets")
    ap.add_argument("--pairs", type=lambda s: [tuple(int(v) for v in p.split(",")) for p in s.split()],
                    default=list(PAIRS), help='(l_max,n_max) pairs, e.g. "2,4 3,4"')
    ap.add_argument("--sizes", type=lambda s: [int(float(v)) for v in s.split(",")], default=None,
                    help="rows, e.g. 1e3,1e4,2e5")
    ap.add_argument("--dtypes", type=lambda s: s.split(","), default=list(DTYPES))
    ap.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    ap.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS),
                    help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed calls per measurement")
    ap.add_argument("--max-call", type=float, default=None, help="skip larger N once one call is projected above this")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ap.add_argument("--name", default=None, help="file stem (default <date>-<host>[-quick])")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="first wait up to this long for the 1-minute load average to drop below 0.5")
    args = ap.parse_args(argv)
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        ap.error(f"--methods: unknown {bad}; choose from {', '.join(METHODS)}")

    result = run(args)
    print_table(result)
    for note in result["notes"]:
        log(f"note: {note}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    host = result["machine"]["host"]
    stem = args.name or f"{datetime.date.today().isoformat()}-{host}" + ("-quick" if args.quick else "")
    path = args.out_dir / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    log(f"\nwrote {path} ({result['wall_s']} s)")
    sizes = sorted({r["n_rows"] for r in result["records"] if "rows_per_s" in r})
    if sizes:
        md = path.with_suffix(".md")
        md.write_text(markdown(result, 200_000 if 200_000 in sizes else sizes[-1]))
        log(f"wrote {md}")
    if not args.no_plot:
        from benchmarks.plot import plot

        png = plot(result, path.with_suffix(".png"))
        log(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
