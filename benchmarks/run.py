"""One benchmark run: every registered method side by side, under the same rules, in one process.

Sections (see benchmarks/README.md for how to read them):

* ``throughput``  rows/s for N in, around and beyond the caches, forward and forward+backward, each method
  of :mod:`benchmarks.methods` (outputs allocated per call; ``+out`` variants apart), at 1 thread on CPU time
  (headline) and 2 threads on wall time (secondary), with a cache-aware roofline for every record;
* ``latency``     time per call for N = 1, 10, 100, 1000 rows, 1 thread, CPU time;
* ``force``       the force-training step end to end (invariants -> MLP -> forces with create_graph -> loss
  backward), :mod:`benchmarks.force_training`.

The machine (CPU model, cores, caches, peak FMA rate, copy bandwidth per cache level), the versions and
the load average are recorded with the results.

    .venv/bin/python benchmarks/run.py --quick               # smoke run, a few minutes
    .venv/bin/python benchmarks/run.py --name 2026-11-29-busy-vm
"""

from __future__ import annotations

import os

# Before NumPy/PyTorch load: one thread unless a measurement asks for more (the harness sets the count
# explicitly per measurement), Inductor compiles in-process, hippynn quiet about kernels it cannot use.
for _var, _val in (("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"),
                   ("TORCHINDUCTOR_COMPILE_THREADS", "1"), ("HIPPYNN_USE_CUSTOM_KERNELS", "False")):
    os.environ.setdefault(_var, _val)

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

from benchmarks import methods as M  # noqa: E402
from benchmarks.force_training import run_force_training  # noqa: E402
from benchmarks.peers import machine, numpy_ref  # noqa: E402
from benchmarks.peers.sparse_poly import hippynn_einsums  # noqa: E402
from benchmarks.timing import measure  # noqa: E402
from optinv.algebra.graphs import ContractionGraph  # noqa: E402
from optinv.algebra.select import select_basis  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402

HERE = Path(__file__).resolve().parent
PAIRS = ((3, 4), (4, 4))
SIZES = (10_000, 100_000, 2_000_000)
LATENCY_SIZES = (1, 10, 100, 1000)
FORCE_SIZES = (10_000, 100_000)
DTYPES = ("float32", "float64")
MODES = ("forward", "forward+backward")
SECTIONS = ("throughput", "latency", "force")


def log(msg: str) -> None:
    print(msg, flush=True)


# -- machine ------------------------------------------------------------------------------------------


def measure_machine(threads, quick) -> dict:
    mach = {**machine.cpu_info(), "lscpu": machine.lscpu(), "caches": machine.cache_info(),
            "peak_gflops": machine.peak_gflops(threads, quick), "bandwidth_gbs": machine.bandwidth_by_level(threads, quick)}
    return mach


def merge_best(a: dict, b: dict) -> dict:
    """Keep the higher of two measurements of each rate: neighbours only ever lower a measured rate."""
    out = {}
    for k, v in a.items():
        if isinstance(v, dict):
            out[k] = merge_best(v, b.get(k, {}))
        elif isinstance(v, float) and isinstance(b.get(k), float):
            out[k] = max(v, b[k])
        else:
            out[k] = v
    return out


def bounds(mach: dict, dtype: str, threads: int, flops: int | None, bytes_moved: int, working_set: int) -> dict:
    """Cache-aware roofline for one record: rows/s allowed by the flop rate and by the level the data lives in.

    At 2 threads the compute bound is twice the 1-thread peak (cores do not share FMA units) and the
    bandwidth the higher of the 2- and 1-thread measurements: on a busy machine a 2-thread measurement
    can come out far too low, and a bound that is too low would flatter every fraction.
    """
    caches = mach["caches"]
    l2 = caches.get("L2", {}).get("bytes", 1 << 20) * threads
    llc = caches.get("last_level_bytes", 32 << 20)
    level = "L2" if working_set <= l2 else ("LLC" if working_set <= llc else "DRAM")
    bw1 = mach["bandwidth_gbs"]["1"][level]["gbs"]
    bwt = mach["bandwidth_gbs"].get(str(threads), {}).get(level, {}).get("gbs", 0.0)
    bw = bw1 if threads == 1 else (threads * bw1 if level == "L2" else max(bw1, bwt))
    out = {"level": level, "bandwidth_gbs": bw, "bandwidth_bound_rows_s": bw * 1e9 / bytes_moved}
    if flops:
        peak = mach["peak_gflops"][dtype]["1"] * threads
        out["peak_gflops"] = peak
        out["compute_bound_rows_s"] = peak * 1e9 / flops
    kinds = {"bandwidth": out["bandwidth_bound_rows_s"]}
    if "compute_bound_rows_s" in out:
        kinds["compute"] = out["compute_bound_rows_s"]
    out["bound"] = min(kinds, key=kinds.get)
    out["bound_rows_s"] = kinds[out["bound"]]
    return out


# -- checks -------------------------------------------------------------------------------------------


def reference_values(ctx, x) -> dict:
    refs = {"optinv": numpy_ref.forward(ctx.basis.graphs, x, ctx.signature)}
    try:
        hg = [ContractionGraph.from_einsum(e, ctx.signature) for e in hippynn_einsums(ctx.l_max, ctx.n_max)]
        refs["hippynn"] = numpy_ref.forward(hg, x, ctx.signature)
    except KeyError:
        pass
    return refs


def check(prepared, meth, refs) -> float | str:
    """Max relative deviation from the NumPy reference of the method's own invariants (float64 reference)."""
    ref = refs.get(meth.invariants)
    if ref is None or prepared.values is None:
        return "no reference"
    got = np.asarray(prepared.values(), dtype=np.float64)
    return float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-3 * np.abs(ref).max(axis=0))))


# -- sections -----------------------------------------------------------------------------------------


def build(ctx, names, notes):
    built = {}
    for name in names:
        meth = M.REGISTRY[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                built[name] = (meth, *meth.build(ctx))
        except M.Unavailable as exc:
            notes.append(f"{name} at ({ctx.l_max},{ctx.n_max}) {ctx.dtype}: skipped ({exc})")
        except Exception as exc:  # noqa: BLE001 - a broken method must not sink the run
            notes.append(f"{name} at ({ctx.l_max},{ctx.n_max}) {ctx.dtype}: failed to build ({type(exc).__name__}: {exc})")
    return built


def _record(ctx, meth, n_out, flops, t, n, mode, section):
    D = ctx.signature.dim
    item = np.dtype(ctx.dtype).itemsize
    fl = flops[0] if mode == "forward" else (flops[0] + flops[1] if None not in flops else None)
    moved = (D + n_out) if mode == "forward" else (3 * D + 2 * n_out)
    ws = (D + n_out) if mode == "forward" else (2 * D + 2 * n_out)
    return {"section": section, "l_max": ctx.l_max, "n_max": ctx.n_max, "D": D, "K": n_out, "dtype": ctx.dtype,
            "method": meth.name, "out_variant": meth.out_variant, "threads": t, "n_rows": n, "mode": mode,
            "flops_per_row": fl, "bytes_per_row": moved * item, "working_set_bytes": ws * item * n}


def run_timed(ctx, built, sizes, threads, args, section, records, mach, rng):
    last: dict = {}
    for n in sizes:
        x = rng.standard_normal((n, ctx.signature.dim)).astype(ctx.dtype)
        gs = {}
        for name, (meth, n_out, flops, prepare) in built.items():
            if n_out not in gs:
                gs[n_out] = rng.standard_normal((n, n_out)).astype(ctx.dtype)
            try:
                prepared = prepare(x, gs[n_out])
            except Exception as exc:  # noqa: BLE001
                records.append({**_record(ctx, meth, n_out, flops, 1, n, "forward", section),
                                "error": f"{type(exc).__name__}: {exc}"})
                continue
            for t in [t for t in threads if t in meth.threads]:
                M.set_threads(t)
                clock = "cpu" if t == 1 else "wall"
                for mode in MODES:
                    rec = _record(ctx, meth, n_out, flops, t, n, mode, section)
                    key = (name, t, mode)
                    if key in last and last[key][0] * n / last[key][1] > args.max_call:
                        rec["skipped"] = f"projected {last[key][0] * n / last[key][1]:.1f} s per call > {args.max_call} s"
                        records.append(rec)
                        continue
                    fn = prepared.forward if mode == "forward" else prepared.forward_backward
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            rec.update(measure(fn, clock, min_samples=args.min_samples, min_total=args.min_total))
                    except Exception as exc:  # noqa: BLE001
                        rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                        records.append(rec)
                        continue
                    last[key] = (rec["median_s"], n)
                    rec["rows_per_s"] = n / rec["median_s"]
                    if rec["flops_per_row"]:
                        rec["gflops"] = rec["flops_per_row"] * rec["rows_per_s"] / 1e9
                    if section == "throughput":
                        b = bounds(mach, ctx.dtype, t, rec["flops_per_row"], rec["bytes_per_row"], rec["working_set_bytes"])
                        rec["roofline"] = b
                        rec["frac_bound"] = rec["rows_per_s"] / b["bound_rows_s"]
                    records.append(rec)
                    log(f"  {section:10s} {ctx.dtype} N={n:<8.0e} {name:18s} {t}t {mode:16s} "
                        f"{rec['rows_per_s']:10.3g} rows/s  {rec['median_s'] * 1e6:10.1f} us  "
                        f"({rec['samples']}x{rec['calls_per_sample']}, spread {rec['spread']:.0%})"
                        + (f"  {rec['frac_bound']:.2f} of {rec['roofline']['bound']} bound ({rec['roofline']['level']})"
                           if "frac_bound" in rec else ""))
            del prepared
    M.set_threads(1)


def add_ratios(records) -> None:
    """Ratios to hippynn eager and compiled at the same (section, pair, dtype, threads, N, mode)."""
    def key(r):
        return (r["section"], r["l_max"], r["n_max"], r["dtype"], r["threads"], r["n_rows"], r.get("mode"))

    for peer in ("hippynn", "hippynn-compiled"):
        base = {key(r): r["rows_per_s"] for r in records if r["method"] == peer and "rows_per_s" in r}
        for r in records:
            if "rows_per_s" in r and key(r) in base:
                r[f"x_{peer}"] = r["rows_per_s"] / base[key(r)]


def rebound(result: dict, threads, quick: bool) -> dict:
    """Measure the machine again and recompute every record's roofline with the higher figures.

    For a run whose machine figures came out too low (timed in wall clock on a busy machine, as
    before the peak was timed in CPU time): a bound that is too low flatters every fraction.
    """
    again = measure_machine(threads, quick)
    mach = result["machine"]
    mach["remeasured"] = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                          "loadavg": os.getloadavg(), "peak_gflops": again["peak_gflops"],
                          "bandwidth_gbs": again["bandwidth_gbs"]}
    mach["peak_gflops"] = merge_best(mach["peak_gflops"], again["peak_gflops"])
    mach["bandwidth_gbs"] = merge_best(mach["bandwidth_gbs"], again["bandwidth_gbs"])
    for r in result["records"]:
        if "roofline" in r:
            r["roofline"] = bounds(mach, r["dtype"], r["threads"], r["flops_per_row"], r["bytes_per_row"], r["working_set_bytes"])
            r["frac_bound"] = r["rows_per_s"] / r["roofline"]["bound_rows_s"]
    result["notes"].append(
        f"machine re-measured on {mach['remeasured']['date']} (peak timed in CPU time) and every roofline recomputed "
        "with the higher of the two measurements: the run's own peak, timed in wall clock at load average "
        f"{mach['loadavg_start'][0]:.1f}-{mach['loadavg_end'][0]:.1f}, came out too low")
    return result


def run(args) -> dict:
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    log(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    log("machine: peak FMA rate and copy bandwidth per cache level")
    mach = measure_machine(args.threads, args.quick)
    mach["loadavg_start"] = load0
    notes: list[str] = []
    rng = np.random.default_rng(12345)
    records: list[dict] = []
    checks: dict = {}
    names = [n for n in args.methods if n in M.REGISTRY]
    for l_max, n_max in args.pairs:
        sig = Signature.from_l_max(l_max)
        basis = select_basis(sig, n_max)
        for dt in args.dtypes:
            ctx = M.Context(l_max, n_max, sig, basis, dt)
            log(f"\n(l_max={l_max}, n_max={n_max}) {dt}: D={sig.dim}, K={len(basis)}")
            built = build(ctx, names, notes)
            xs = rng.standard_normal((1000, sig.dim))
            refs = reference_values(ctx, xs)
            x_dt = xs.astype(dt)
            for name, (meth, n_out, flops, prepare) in built.items():
                try:
                    checks[f"l{l_max}_n{n_max}/{dt}/{name}"] = check(prepare(x_dt, np.zeros((1000, n_out), dt)), meth, refs)
                except Exception as exc:  # noqa: BLE001
                    checks[f"l{l_max}_n{n_max}/{dt}/{name}"] = f"{type(exc).__name__}: {exc}"
            if "throughput" in args.sections:
                run_timed(ctx, built, args.sizes, args.threads, args, "throughput", records, mach, rng)
            if "latency" in args.sections and (l_max, n_max) in args.latency_pairs:
                run_timed(ctx, {k: v for k, v in built.items() if not v[0].out_variant}, args.latency_sizes, (1,),
                          args, "latency", records, mach, rng)
            if "force" in args.sections and (l_max, n_max) in args.latency_pairs:
                M.set_threads(1)
                records += run_force_training(ctx, args.force_sizes, min_samples=args.min_samples, log=log)
    add_ratios(records)
    mach["loadavg_end"] = os.getloadavg()
    log("\nmachine: measuring again at the end (the higher of the two measurements is kept)")
    again = measure_machine(args.threads, args.quick)
    mach["start"] = {"peak_gflops": mach["peak_gflops"], "bandwidth_gbs": mach["bandwidth_gbs"]}
    mach["end"] = {"peak_gflops": again["peak_gflops"], "bandwidth_gbs": again["bandwidth_gbs"]}
    mach["peak_gflops"] = merge_best(mach["peak_gflops"], again["peak_gflops"])
    mach["bandwidth_gbs"] = merge_best(mach["bandwidth_gbs"], again["bandwidth_gbs"])
    for r in records:  # recompute the roofline with the best machine figures
        if "roofline" in r:
            r["roofline"] = bounds(mach, r["dtype"], r["threads"], r["flops_per_row"], r["bytes_per_row"], r["working_set_bytes"])
            r["frac_bound"] = r["rows_per_s"] / r["roofline"]["bound_rows_s"]
    if max(load0[0], mach["loadavg_end"][0]) > 0.5:
        notes.append(f"busy machine: load average {load0[0]:.2f} at start, {mach['loadavg_end'][0]:.2f} at end; "
                     "1-thread figures are CPU time (robust to sharing the cores, not to sharing caches and memory "
                     "bandwidth); 2-thread figures are wall time and only indicative")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": mach,
        "versions": machine.versions(),
        "settings": {"pairs": [list(p) for p in args.pairs], "sizes": list(args.sizes), "dtypes": list(args.dtypes),
                     "threads": list(args.threads), "methods": names, "latency_sizes": list(args.latency_sizes),
                     "force_sizes": list(args.force_sizes), "min_samples": args.min_samples,
                     "min_total_s": args.min_total, "max_call_s": args.max_call, "sections": list(args.sections),
                     "timing": "2 warm-up calls, then >= min_samples samples (more until min_total_s); median and "
                               "quartiles; 1 thread: process CPU time; 2 threads: wall time",
                     "allocation": "every method allocates its outputs per call; '+out' methods reuse buffers"},
        "methods": {n: M.REGISTRY[n].description for n in names},
        "checks_max_rel_err_vs_numpy_ref": checks,
        "notes": notes,
        "records": records,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }


# -- report -------------------------------------------------------------------------------------------


def _f(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _get(recs, **kw):
    return next((r for r in recs if all(r.get(k) == v for k, v in kw.items())), {})


def markdown(result) -> str:
    m, v = result["machine"], result["versions"]
    recs = [r for r in result["records"] if "rows_per_s" in r or "error" in r or "skipped" in r]
    caches = m.get("caches", {})
    bw1 = m["bandwidth_gbs"]["1"]
    lines = [
        f"# Benchmark {result['date']}",
        "",
        f"Machine: {m['lscpu'].get('Model name', m['cpu_model'])}, {m['usable_cpus']} CPUs "
        f"({m['lscpu'].get('Core(s) per socket', '?')} cores/socket, {m['lscpu'].get('Thread(s) per core', '?')} thread/core), "
        f"L2 {caches.get('L2', {}).get('bytes', 0) >> 20} MiB/core, last level {caches.get('last_level_bytes', 0) >> 20} MiB; "
        f"peak 1 thread {m['peak_gflops']['float32']['1']:.0f} GFLOP/s float32, {m['peak_gflops']['float64']['1']:.0f} float64; "
        f"copy bandwidth 1 thread L2 {bw1['L2']['gbs']:.0f}, LLC {bw1['LLC']['gbs']:.0f}, DRAM {bw1['DRAM']['gbs']:.1f} GB/s.",
        f"Load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end (shared machine).",
        f"Versions: Python {v['python']}, NumPy {v['numpy']}, torch {v['torch']}, hippynn {v['hippynn']}, {v['gcc']}; "
        f"optinv {v.get('optinv_git', v.get('optinv'))}.",
        "",
        "Rules: every method allocates its outputs per call (`+out` rows reuse buffers and are the kernel alone); "
        f">= {result['settings']['min_samples']} timed samples per figure after 2 warm-up calls, median shown; "
        "**1 thread = process CPU time** (headline), 2 threads = wall time on a busy machine (indicative only).",
        "",
    ]
    thr = [r for r in recs if r["section"] == "throughput"]
    sizes = sorted({r["n_rows"] for r in thr})
    for key in sorted({(r["l_max"], r["n_max"], r["dtype"]) for r in thr}):
        sel = [r for r in thr if (r["l_max"], r["n_max"], r["dtype"]) == key]
        meths = list(dict.fromkeys(r["method"] for r in sel))
        for t in sorted({r["threads"] for r in sel}):
            clock = "CPU time" if t == 1 else "wall time, busy machine"
            mid = 100_000 if 100_000 in sizes else sizes[len(sizes) // 2]
            lines += [f"## ({key[0]},{key[1]}) {key[2]}, {t} thread{'s' if t > 1 else ''} ({clock}): rows/s", "",
                      "| method | " + " | ".join(f"N={n:.0e} fwd | fwd+bwd" for n in sizes)
                      + f" | x hippynn fwd, fwd+bwd (N={mid:.0e}) | x hippynn-compiled | fwd frac. of bound, N={sizes[-1]:.0e} |",
                      "|---|" + "---|---|" * len(sizes) + "---|---|---|"]
            for meth in meths:
                cells = []
                for n in sizes:
                    for mode in MODES:
                        r = _get(sel, method=meth, threads=t, n_rows=n, mode=mode)
                        cells.append(_f(r.get("rows_per_s"), ".3g") if "rows_per_s" in r else ("skip" if "skipped" in r else ("err" if "error" in r else "")))
                if not any(c not in ("", "-") for c in cells):
                    continue
                f_mid, b_mid = (_get(sel, method=meth, threads=t, n_rows=mid, mode=md) for md in MODES)
                big = _get(sel, method=meth, threads=t, n_rows=sizes[-1], mode="forward")
                rf = big.get("roofline", {})
                frac = f"{big['frac_bound']:.2f} ({rf['bound']}, {rf['level']})" if "frac_bound" in big else "-"
                lines.append(f"| {meth} | " + " | ".join(cells)
                             + f" | {_f(f_mid.get('x_hippynn'), '.1f')}, {_f(b_mid.get('x_hippynn'), '.1f')}"
                             + f" | {_f(f_mid.get('x_hippynn-compiled'), '.1f')}, {_f(b_mid.get('x_hippynn-compiled'), '.1f')} | {frac} |")
            lines.append("")
    lat = [r for r in recs if r["section"] == "latency"]
    for key in sorted({(r["l_max"], r["n_max"], r["dtype"]) for r in lat}):
        sel = [r for r in lat if (r["l_max"], r["n_max"], r["dtype"]) == key]
        ns = sorted({r["n_rows"] for r in sel})
        lines += [f"## Latency ({key[0]},{key[1]}) {key[2]}, 1 thread, CPU time: microseconds per call", "",
                  "| method | " + " | ".join(f"N={n} fwd | fwd+bwd" for n in ns) + " |", "|---|" + "---|---|" * len(ns)]
        for meth in dict.fromkeys(r["method"] for r in sel):
            cells = []
            for n in ns:
                for md in MODES:
                    r = _get(sel, method=meth, n_rows=n, mode=md)
                    cells.append(_f(r["median_s"] * 1e6, ".1f") if "median_s" in r else ("err" if "error" in r else "-"))
            lines.append(f"| {meth} | " + " | ".join(cells) + " |")
        lines.append("")
    ft = [r for r in recs if r["section"] == "force_training"]
    if ft:
        lines += ["## Force training step (invariants -> MLP energy -> forces with create_graph -> loss backward), "
                  "1 thread, CPU time", "", "| (l,n) dtype | N | method | ms per step | rows/s | x hippynn | note |",
                  "|---|---|---|---|---|---|---|"]
        base = {(r["l_max"], r["n_max"], r["dtype"], r["n_rows"]): r.get("rows_per_s") for r in ft if r["method"] == "hippynn"}
        for r in ft:
            b = base.get((r["l_max"], r["n_max"], r["dtype"], r["n_rows"]))
            note = r.get("error") or r.get("skipped") or (f"same invariants as hippynn: max rel. diff of loss and weight "
                                                          f"gradients {r['max_rel_diff_h13_vs_hippynn']:.1e}"
                                                          if "max_rel_diff_h13_vs_hippynn" in r else "")
            lines.append(f"| ({r['l_max']},{r['n_max']}) {r['dtype']} | {r['n_rows']:.0e} | {r['method']} | "
                         f"{_f(r.get('median_s', None) and r['median_s'] * 1e3, '.2f')} | {_f(r.get('rows_per_s'), '.3g')} | "
                         f"{_f(r['rows_per_s'] / b if b and 'rows_per_s' in r else None, '.1f')} | {note} |")
        lines.append("")
    errors = sorted({(r["method"], r["section"], r["error"].split("\n")[0][:160]) for r in recs if "error" in r})
    if errors:
        lines += ["## Errors (`err` above)", ""] + [f"- {m} ({s}): {e}" for m, s, e in errors] + [""]
    lines += ["## Checks (max relative error of the forward vs the NumPy reference of the method's invariants)", ""]
    lines += [f"- {k}: {_f(v, '.1e') if not isinstance(v, str) else v}" for k, v in result["checks_max_rel_err_vs_numpy_ref"].items()]
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    pairs = lambda s: [tuple(int(v) for v in p.split(",")) for p in s.split()]  # noqa: E731
    ints = lambda s: [int(float(v)) for v in s.split(",")]  # noqa: E731
    ap.add_argument("--quick", action="store_true", help="smoke run: small N, 5 samples")
    ap.add_argument("--pairs", type=pairs, default=list(PAIRS), help='(l_max,n_max) pairs, e.g. "3,4 4,4"')
    ap.add_argument("--latency-pairs", type=pairs, default=[(3, 4)], help="pairs for the latency and force sections")
    ap.add_argument("--sizes", type=ints, default=None, help="rows for throughput, e.g. 1e4,1e5,2e6")
    ap.add_argument("--latency-sizes", type=ints, default=list(LATENCY_SIZES))
    ap.add_argument("--force-sizes", type=ints, default=None)
    ap.add_argument("--dtypes", type=lambda s: s.split(","), default=list(DTYPES))
    ap.add_argument("--threads", type=ints, default=[1, 2])
    ap.add_argument("--methods", type=lambda s: s.split(","), default=list(M.REGISTRY),
                    help="comma-separated subset of " + ",".join(M.REGISTRY))
    ap.add_argument("--sections", type=lambda s: s.split(","), default=list(SECTIONS))
    ap.add_argument("--min-samples", type=int, default=None)
    ap.add_argument("--min-total", type=float, default=None, help="keep sampling until this many seconds are timed")
    ap.add_argument("--max-call", type=float, default=None, help="skip larger N once one call is projected above this")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ap.add_argument("--name", default=None, help="file stem (default <date>-<host>[-quick])")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--rebound", type=Path, default=None, metavar="JSON",
                    help="re-measure the machine for a saved result, recompute its rooflines, rewrite its .md and .png")
    args = ap.parse_args(argv)
    if args.rebound:
        result = rebound(json.loads(args.rebound.read_text()), args.threads, args.quick)
        args.rebound.write_text(json.dumps(result, indent=1) + "\n")
        args.rebound.with_suffix(".md").write_text(markdown(result))
        if not args.no_plot:
            from benchmarks.plot import plot

            plot(result, args.rebound.with_suffix(".png"))
        log(f"rewrote {args.rebound} and its .md, .png")
        return 0
    bad = [m for m in args.methods if m not in M.REGISTRY] + [s for s in args.sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown methods or sections {bad}; methods: {', '.join(M.REGISTRY)}; sections: {', '.join(SECTIONS)}")
    args.sizes = args.sizes or ([1_000, 20_000] if args.quick else list(SIZES))
    args.force_sizes = args.force_sizes or ([1_000] if args.quick else list(FORCE_SIZES))
    args.min_samples = args.min_samples or (5 if args.quick else 10)
    args.min_total = args.min_total if args.min_total is not None else (0.02 if args.quick else 0.2)
    args.max_call = args.max_call if args.max_call is not None else (0.5 if args.quick else 2.0)

    result = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"{datetime.date.today().isoformat()}-{result['machine']['host']}" + ("-quick" if args.quick else "")
    path = args.out_dir / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    md = path.with_suffix(".md")
    md.write_text(markdown(result))
    log(f"\nwrote {path} and {md} ({result['wall_s']} s)")
    for note in result["notes"]:
        log(f"note: {note}")
    if not args.no_plot:
        from benchmarks.plot import plot

        log(f"wrote {plot(result, path.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
