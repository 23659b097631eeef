"""Every CPU target side by side: the C kernel, its torch paths, straight-line torch (eager, compiled), JAX.

For (l_max, n_max) in (3,4), (4,4), float32 and float64, forward and
forward+backward (forward, then the VJP with a random cotangent ``g``), N rows,
1 thread, CPU time (``time.process_time``: other tenants of a busy machine do
not inflate it), every method allocating its outputs per call:

* ``c``                    the generated C kernel: ``module.forward(x)``, then ``module.vjp(x, g)``
* ``c-torch-adapter``      the C kernel through ``torch_invariants`` (autograd.Function, what hippynn users call)
* ``c-torch-library``      the C kernel through the registered custom operators (``torch_library_invariants``)
* ``c-torch-cpp``          the C kernel through the operators registered from C++ (``torch_cpp_invariants``)
* ``torch-source``         the ``torch`` target (``torch_module()``) in eager mode; backward by autograd
* ``torch-source-compiled`` the same under ``torch.compile`` (Inductor, C++ on CPU); compile time reported apart
* ``jax-jit``              the ``jax`` target under ``jax.jit``; forward+backward as one jitted ``jax.vjp``
* ``jax-c-callback``       the C kernel from JAX (``jax_c_invariants``: ``pure_callback`` + ``custom_vjp``), jitted
* ``jax-c-ffi``            the C kernel from JAX through the XLA FFI (``jax_ffi_invariants``, + ``custom_vjp``), jitted
* ``hippynn``, ``hippynn-compiled``  hippynn's ``calc_invariants`` (eager, and under ``torch.compile``), (3,4) only

Results: ``benchmarks/results/<date>-<host>-targets.json`` with machine, versions and load average.

    .venv/bin/python benchmarks/targets_bench.py --quick     # N = 20000, about two minutes
    .venv/bin/python benchmarks/targets_bench.py             # N = 200000
    python benchmarks/targets_bench.py --device cuda         # on a GPU (benchmarks/gpu.sh runs this)
"""

from __future__ import annotations

import os

# one thread everywhere, before NumPy / torch / XLA load
for _var, _val in (("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"),
                   ("TORCHINDUCTOR_COMPILE_THREADS", "1"), ("HIPPYNN_USE_CUSTOM_KERNELS", "False"),
                   ("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")):
    os.environ.setdefault(_var, _val)

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.peers import hippynn_peer  # noqa: E402
from benchmarks.peers.machine import cpu_info, versions  # noqa: E402

PAIRS = ((3, 4), (4, 4))
DTYPES = ("float32", "float64")
MODES = ("forward", "forward+backward")


def log(msg: str) -> None:
    print(msg, flush=True)


def cpu_time_per_call(fn, min_reps: int, budget: float) -> tuple[float, int]:
    """Best CPU seconds per call over at least ``min_reps`` calls (more while under ``budget`` seconds)."""
    best, spent, reps = float("inf"), 0.0, 0
    while reps < min_reps or spent < budget:
        t0 = time.process_time()
        fn()
        dt = time.process_time() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
        if reps >= 200:
            break
    return best, reps


def torch_methods(module, l_max, n_max, dtype, torch):
    """name -> (forward(x), forward_backward(x, g)) on torch tensors."""
    def autograd_pair(fn):
        def fwd(x):
            with torch.no_grad():
                return fn(x)

        def fb(x, g):
            x = x.detach().requires_grad_(True)
            y = fn(x)
            (gx,) = torch.autograd.grad(y, x, g)
            return y, gx

        return fwd, fb

    out = {
        "c-torch-adapter": autograd_pair(module.torch_invariants),
        "c-torch-library": autograd_pair(module.torch_library_invariants),
        "c-torch-cpp": autograd_pair(module.torch_cpp_invariants),
        "torch-source": autograd_pair(module.torch_module()),
        "torch-source-compiled": autograd_pair(torch.compile(module.torch_module(), dynamic=False)),
    }
    if (l_max, n_max) in hippynn_peer.SUPPORTED and hippynn_peer.available() is None:
        peer = hippynn_peer.HippynnPeer(l_max, n_max, dtype)
        out["hippynn"] = autograd_pair(lambda x: peer.calc_invariants(l_max, n_max, x, peer.C))
        compiled = torch.compile(lambda x: peer.calc_invariants(l_max, n_max, x, peer.C), dynamic=False)
        out["hippynn-compiled"] = autograd_pair(compiled)
    return out


def jax_methods(module):
    import jax

    fwd = jax.jit(module.jax_invariants)

    @jax.jit
    def fb(x, g):
        y, pullback = jax.vjp(module.jax_invariants, x)
        return y, pullback(g)[0]

    def reverse_pair(f):  # the C kernel from JAX (a custom_vjp), jitted
        cfwd = jax.jit(f)

        @jax.jit
        def cfb(x, g):
            y, pullback = jax.vjp(f, x)
            return y, pullback(g)[0]

        return lambda x: cfwd(x).block_until_ready(), lambda x, g: jax.block_until_ready(cfb(x, g))

    return {"jax-jit": (lambda x: fwd(x).block_until_ready(),
                        lambda x, g: jax.block_until_ready(fb(x, g))),
            "jax-c-callback": reverse_pair(module.jax_c_invariants),
            "jax-c-ffi": reverse_pair(module.jax_ffi_invariants)}


def wall_time_per_call(fn, sync, min_reps: int, budget: float) -> tuple[float, int]:
    """Best wall seconds per call between device synchronisations (a GPU's time is not process CPU time)."""
    best, spent, reps = float("inf"), 0.0, 0
    while reps < min_reps or spent < budget:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
        if reps >= 200:
            break
    return best, reps


def cuda_methods(module, l_max, n_max, dtype, torch, device: str = "cuda"):
    """name -> (forward(x), forward_backward(x, g)) on CUDA tensors: every GPU target and hippynn's CUDA path.

    ``device="cpu"`` (``--dry-run``): the same wiring on CPU tensors, without CuPy and Triton.
    """
    from optinv.codegen.targets.python_source import kernel_module

    def autograd_pair(fn):
        def fwd(x):
            with torch.no_grad():
                return fn(x)

        def fb(x, g):
            x = x.detach().requires_grad_(True)
            y = fn(x)
            (gx,) = torch.autograd.grad(y, x, g)
            return y, gx

        return fwd, fb

    out = {}
    try:
        if device != "cuda":
            raise ImportError("dry run")
        import cupy

        def cupy_pair():
            def fwd(x):
                return module.forward(cupy.from_dlpack(x))

            def fb(x, g):
                xc = cupy.from_dlpack(x)
                return module.forward(xc), module.vjp(xc, cupy.from_dlpack(g))

            return fwd, fb

        out["cuda-cupy"] = cupy_pair()
    except ImportError:
        log("   dry run: cuda-cupy skipped; cuda-torch-adapter and cuda-torch-library run the C kernel on CPU tensors"
            if device != "cuda" else
            "   cupy not importable: the CUDA kernel (cuda-cupy, cuda-torch-adapter, cuda-torch-library) skipped")
    if device != "cuda" or "cuda-cupy" in out:  # the torch routes to the CUDA kernel; dry run: their wiring on CPU
        out["cuda-torch-adapter"] = autograd_pair(module.torch_invariants)
        out["cuda-torch-library"] = autograd_pair(module.torch_library_invariants)
    out["torch-source"] = autograd_pair(module.torch_module())
    out["torch-source-compiled"] = autograd_pair(torch.compile(module.torch_module(), dynamic=False))
    try:
        if device != "cuda":
            raise ImportError("dry run")
        tk = kernel_module(module, "triton_kernels", "triton")
        out["triton"] = (lambda x: tk.forward(x), lambda x, g: (tk.forward(x), tk.vjp(x, g)))
    except ImportError:
        log("   triton not importable: skipped")
    if (l_max, n_max) in hippynn_peer.SUPPORTED and hippynn_peer.available() is None:
        peer = hippynn_peer.HippynnPeer(l_max, n_max, dtype, device=device)
        out["hippynn"] = autograd_pair(lambda x: peer.calc_invariants(l_max, n_max, x, peer.C))
        out["hippynn-compiled"] = autograd_pair(
            torch.compile(lambda x: peer.calc_invariants(l_max, n_max, x, peer.C), dynamic=False))
    return out


def run_cuda(n: int, pairs, dtypes, budget: float, min_reps: int, skip: set[str], dry_run: bool = False) -> list[dict]:
    import torch

    device = "cpu" if dry_run else "cuda"
    if not dry_run and not torch.cuda.is_available():
        log("no CUDA device (torch.cuda.is_available() is False): nothing to time; --dry-run checks the wiring on CPU")
        return []
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    records = []
    rng = np.random.default_rng(0)
    for l_max, n_max in pairs:
        module = importlib.import_module(f"optinv.generated.hop_l{l_max}_n{n_max}")
        for dtype in dtypes:
            xt = torch.from_numpy(rng.normal(size=(n, module.D)).astype(dtype)).to(device)
            gt = torch.from_numpy(rng.normal(size=(n, module.K)).astype(dtype)).to(device)
            for name, pair in cuda_methods(module, l_max, n_max, dtype, torch, device).items():
                if name in skip:
                    continue
                for mode, fn in zip(MODES, pair):
                    rec = {"device": device, "l_max": l_max, "n_max": n_max, "dtype": dtype, "n": n, "mode": mode,
                           "method": name}
                    call = (lambda fn=fn: fn(xt)) if mode == "forward" else (lambda fn=fn: fn(xt, gt))
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            t0 = time.perf_counter()
                            call()
                            sync()
                            rec["first_call_s"] = round(time.perf_counter() - t0, 3)
                            sec, reps = wall_time_per_call(call, sync, min_reps, budget)
                        rec.update(wall_s_per_call=sec, reps=reps, rows_per_s=n / sec)
                        log(f"cuda ({l_max},{n_max}) {dtype:7s} {mode:16s} {name:22s} {n / sec / 1e6:9.1f} Mrows/s "
                            f"(first call {rec['first_call_s']:.2f} s)")
                    except Exception as exc:  # noqa: BLE001 - one method failing must not lose the others
                        rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        log(f"cuda ({l_max},{n_max}) {dtype:7s} {mode:16s} {name:22s} ERROR {rec['error']}")
                    records.append(rec)
    return records


def plot(records: list[dict], path: Path) -> None:
    """One panel per (pair, dtype): rows/s of each method, forward and forward+backward (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("   matplotlib not importable: no PNG")
        return
    keys = sorted({(r["l_max"], r["n_max"], r["dtype"]) for r in records if "rows_per_s" in r})
    if not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4.5), squeeze=False)
    for ax, (l_max, n_max, dtype) in zip(axes[0], keys):
        rows = [r for r in records if (r["l_max"], r["n_max"], r["dtype"]) == (l_max, n_max, dtype)
                and "rows_per_s" in r]
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for k, mode in enumerate(MODES):
            vals = [next((r["rows_per_s"] for r in rows if r["method"] == m and r["mode"] == mode), 0) for m in methods]
            ax.barh([i + 0.4 * k for i in range(len(methods))], vals, height=0.4, label=mode)
        ax.set_yticks([i + 0.2 for i in range(len(methods))], methods)
        ax.set_xscale("log")
        ax.set_xlabel("rows/s")
        ax.set_title(f"({l_max},{n_max}) {dtype}, N={rows[0]['n']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


def run(n: int, pairs, dtypes, budget: float, min_reps: int, skip: set[str]) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    records = []
    rng = np.random.default_rng(0)
    for l_max, n_max in pairs:
        module = importlib.import_module(f"optinv.generated.hop_l{l_max}_n{n_max}")
        module.set_num_threads(1)
        for dtype in dtypes:
            x = rng.normal(size=(n, module.D)).astype(dtype)
            g = rng.normal(size=(n, module.K)).astype(dtype)
            xt, gt = torch.from_numpy(x), torch.from_numpy(g)
            methods = {"c": ((lambda: module.forward(x)), (lambda: (module.forward(x), module.vjp(x, g))))}
            for name, (f, fb) in torch_methods(module, l_max, n_max, dtype, torch).items():
                methods[name] = ((lambda f=f: f(xt)), (lambda fb=fb: fb(xt, gt)))
            if "jax" not in skip:
                try:
                    import jax

                    with jax.enable_x64(dtype == "float64"):
                        xj, gj = jax.numpy.asarray(x), jax.numpy.asarray(g)
                        for name, (f, fb) in jax_methods(module).items():
                            methods[name] = ((lambda f=f, xj=xj: f(xj)), (lambda fb=fb, xj=xj, gj=gj: fb(xj, gj)))
                except ImportError:
                    log("   jax not importable: skipped")
            for name, pair in methods.items():
                if name in skip:
                    continue
                for mode, fn in zip(MODES, pair):
                    rec = {"l_max": l_max, "n_max": n_max, "dtype": dtype, "n": n, "mode": mode, "method": name}
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            t0 = time.process_time()
                            if name.startswith("jax"):
                                import jax

                                with jax.enable_x64(dtype == "float64"):
                                    fn()
                                    rec["first_call_s"] = round(time.process_time() - t0, 3)
                                    sec, reps = cpu_time_per_call(fn, min_reps, budget)
                            else:
                                fn()  # warm-up; compiles where the method compiles
                                rec["first_call_s"] = round(time.process_time() - t0, 3)
                                sec, reps = cpu_time_per_call(fn, min_reps, budget)
                        rec.update(cpu_s_per_call=sec, reps=reps, rows_per_s=n / sec)
                    except Exception as exc:  # noqa: BLE001 - one method failing must not lose the others
                        rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        traceback.print_exc(limit=2)
                    records.append(rec)
            base = {r["mode"]: r.get("cpu_s_per_call") for r in records
                    if (r["l_max"], r["n_max"], r["dtype"], r["method"]) == (l_max, n_max, dtype, "c")}
            for r in records:
                if (r["l_max"], r["n_max"], r["dtype"]) == (l_max, n_max, dtype) and "cpu_s_per_call" in r:
                    r["time_vs_c"] = r["cpu_s_per_call"] / base[r["mode"]] if base.get(r["mode"]) else None
                    log(f"({l_max},{n_max}) {dtype:7s} {r['mode']:16s} {r['method']:22s} "
                        f"{r['rows_per_s'] / 1e6:8.2f} Mrows/s  {r['time_vs_c']:7.2f}x the C kernel's time  "
                        f"(first call {r['first_call_s']:.2f} s, {r['reps']} reps)")
                elif (r["l_max"], r["n_max"], r["dtype"]) == (l_max, n_max, dtype):
                    log(f"({l_max},{n_max}) {dtype:7s} {r['mode']:16s} {r['method']:22s} ERROR {r['error']}")
    return records


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 20000, short budgets")
    ap.add_argument("--n", type=int, help="rows per call (default 200000; --quick 20000)")
    ap.add_argument("--pairs", default="3,4;4,4", help="(l_max,n_max) pairs, e.g. '3,4;4,4'")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out (or 'jax')")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda: every GPU target (CuPy, torch adapter, torch source eager/compiled, Triton) and "
                         "hippynn's CUDA path, wall time between synchronisations")
    ap.add_argument("--dry-run", action="store_true", help="with --device cuda: run the GPU wiring on CPU tensors")
    ap.add_argument("--out", help="results JSON path (a PNG is written beside it)")
    args = ap.parse_args(argv)
    n = args.n or ((20_000 if args.quick else 200_000) if args.device == "cpu" else
                   (200_000 if args.quick else 2_000_000))
    pairs = [tuple(int(v) for v in p.split(",")) for p in args.pairs.split(";") if p]
    dtypes = [d for d in args.dtypes.split(",") if d]
    start = time.time()
    opts = dict(budget=0.3 if args.quick else 1.0, min_reps=3 if args.quick else 10,
                skip={s for s in args.skip.split(",") if s})
    if args.device == "cpu":
        records = run(n, pairs, dtypes, **opts)
    else:
        records = run_cuda(n, pairs, dtypes, dry_run=args.dry_run, **opts)
    vers = versions()
    for dist in ("jax", "jaxlib", "triton"):
        try:
            from importlib.metadata import version

            vers[dist] = version(dist)
        except Exception:  # noqa: BLE001 - not installed
            vers[dist] = None
    result = {"kind": "targets", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "host": socket.gethostname(), "machine": cpu_info(), "versions": vers,
              "loadavg": os.getloadavg(), "device": args.device, "threads": 1 if args.device == "cpu" else None,
              "timer": "time.process_time (CPU time, best per call)" if args.device == "cpu" else
              "time.perf_counter between torch.cuda.synchronize() (wall time, best per call)",
              "n": n, "seconds": round(time.time() - start, 1), "records": records}
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / (
        f"{datetime.date.today()}-{socket.gethostname()}-targets{'-gpu' if args.device == 'cuda' else ''}"
        f"{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out} ({result['seconds']} s)")
    plot(records, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
