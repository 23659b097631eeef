"""The CUDA comparison: optinv's CUDA kernel (CuPy) against hippynn's PyTorch CUDA path.

Run by ``benchmarks/gpu.sh`` on a machine with one NVIDIA GPU; fits in a few
minutes.  For (l_max, n_max) in (2,4), (3,4), (4,4), float32 and float64,
forward and forward+backward, N in 10^4 .. 4*10^6 rows:

* ``optinv-cupy``        the generated module on CuPy arrays (``forward``, then ``vjp``), ``out=`` buffers
* ``optinv-torch``       the generated module's ``torch_invariants`` on CUDA tensors (autograd, DLPack)
* ``hippynn``            ``calc_invariants`` on CUDA tensors (no_grad forward; autograd.grad for backward)
* ``sparse-poly-cuda``   the sparse-polynomial peer (HIP-HOP-NN's GPU strategy) as a CuPy RawModule,
                         one thread per row; (3,4) for both optinv's basis and HIP-HOP-NN's 13

Timing: warm-up, then best of k between device synchronisations.  Results:
``benchmarks/results/<date>-<host>-gpu.json`` (``--out``).

Nothing here has run yet on a GPU in the session that wrote it (no GPU was
available); the CUDA source of the sparse-polynomial peer is compiled with nvcc
in the tests where nvcc exists.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.peers import generated as gen_peer  # noqa: E402
from benchmarks.peers import hippynn_peer  # noqa: E402
from benchmarks.peers.machine import versions  # noqa: E402
from benchmarks.peers.sparse_poly import HIPPYNN_13, SparsePolynomialProgram, emit_cuda  # noqa: E402

PAIRS = ((2, 4), (3, 4), (4, 4))
SIZES = (10_000, 100_000, 1_000_000, 4_000_000)
QUICK_SIZES = (10_000, 200_000)
MODES = ("forward", "forward+backward")


def log(msg):
    print(msg, flush=True)


def best_of(fn, sync, budget, max_reps=30):
    fn()
    sync()
    best, spent, reps = float("inf"), 0.0, 0
    while reps < max_reps and (reps == 0 or spent + best <= budget):
        t0 = time.perf_counter()
        fn()
        sync()
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return best, reps


class SparseCuda:
    def __init__(self, cupy, einsums, sig, name):
        self.cp = cupy
        self.prog = SparsePolynomialProgram.from_einsums(einsums, sig)
        self.mod = cupy.RawModule(code=emit_cuda(self.prog, name), options=("--std=c++14",))
        self.D, self.K = sig.dim, self.prog.n_invariants

    def _launch(self, fn, n, *args):
        block = 128
        fn(((n + block - 1) // block,), (block,), (*args, np.int64(n)))

    def forward(self, x, out):
        tag = "f32" if x.dtype == np.float32 else "f64"
        self._launch(self.mod.get_function(f"sp_forward_{tag}"), x.shape[0], x, out)
        return out

    def vjp(self, x, g, out):
        tag = "f32" if x.dtype == np.float32 else "f64"
        self._launch(self.mod.get_function(f"sp_vjp_{tag}"), x.shape[0], x, g, out)
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="CUDA comparison: optinv vs hippynn (and the sparse-polynomial peer)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timed calls per measurement")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    budget = args.budget if args.budget is not None else (0.05 if args.quick else 0.2)

    import torch

    try:
        import cupy as cp
    except ImportError as exc:  # still time hippynn's CUDA path, and say what was skipped
        cp = None
        cupy_missing = f"CuPy is not importable ({exc}): optinv's CUDA kernel and the sparse-polynomial CUDA peer skipped"

    from optinv.algebra.select import select_basis
    from optinv.algebra.signature import Signature

    if not torch.cuda.is_available():
        log("torch sees no CUDA device: nothing to compare")
        return 1
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    result = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "gpu": torch.cuda.get_device_name(0),
        "versions": {**versions(), "cupy": cp.__version__ if cp else None, "torch_cuda": torch.version.cuda,
                     "cuda_runtime": cp.cuda.runtime.runtimeGetVersion() if cp else None},
        "settings": {"sizes": list(sizes), "budget_s": budget, "timing": "warm-up, best of k, synchronised"},
        "notes": [],
        "records": [],
    }
    if cp is None:
        result["notes"].append(cupy_missing)
        log(f"note: {cupy_missing}")
    rng = np.random.default_rng(0)
    for l_max, n_max in PAIRS:
        sig = Signature.from_l_max(l_max)
        basis = select_basis(sig, n_max)
        methods = {}
        try:
            if cp is None:
                raise gen_peer.Unavailable("no CuPy")
            mod = gen_peer.load_generated(f"hop_l{l_max}_n{n_max}", basis, sig)
            methods["optinv-cupy"] = ("cupy", mod, len(basis))
            if hasattr(mod, "torch_invariants"):
                methods["optinv-torch"] = ("torch-optinv", mod, len(basis))
        except Exception as exc:  # noqa: BLE001
            result["notes"].append(f"optinv l{l_max}_n{n_max} skipped: {type(exc).__name__}: {exc}")
        if (l_max, n_max) in hippynn_peer.SUPPORTED and hippynn_peer.available() is None:
            methods["hippynn"] = ("torch-hippynn", None, None)
        for mname, einsums in (("sparse-poly-cuda", basis.einsums), ("sparse-poly-cuda-h13", list(HIPPYNN_13))):
            if cp is None or (mname.endswith("h13") and (l_max, n_max) != (3, 4)):
                continue
            try:
                methods[mname] = ("cupy", SparseCuda(cp, einsums, sig, f"{mname}_l{l_max}"), len(einsums))
            except Exception as exc:  # noqa: BLE001
                result["notes"].append(f"{mname} l{l_max}_n{n_max} skipped: {type(exc).__name__}: {exc}")
        log(f"(l_max={l_max}, n_max={n_max}) methods: {', '.join(methods)}")
        for dt in ("float32", "float64"):
            tdt = getattr(torch, dt)
            hip = hippynn_peer.HippynnPeer(l_max, n_max, dt, device="cuda") if "hippynn" in methods else None
            for n in sizes:
                x_np = rng.standard_normal((n, sig.dim)).astype(dt)
                for mname, (kind, obj, k) in methods.items():
                    try:
                        if kind == "cupy":
                            x = cp.asarray(x_np)
                            g = cp.asarray(rng.standard_normal((n, k)).astype(dt))
                            out, gx = cp.empty((n, k), dtype=dt), cp.empty_like(x)
                            fwd = (lambda o=obj, x=x, out=out: o.forward(x, out=out))
                            both = (lambda o=obj, x=x, g=g, out=out, gx=gx: (o.forward(x, out=out), o.vjp(x, g, out=gx)))
                        elif kind == "torch-optinv":
                            xt = torch.from_numpy(x_np).to(dev)
                            gt = torch.randn((n, k), dtype=tdt, device=dev)

                            def fwd(o=obj, xt=xt):
                                with torch.no_grad():
                                    return o.torch_invariants(xt)

                            def both(o=obj, xt=xt, gt=gt):
                                xr = xt.detach().requires_grad_(True)
                                return torch.autograd.grad(o.torch_invariants(xr), xr, gt)
                        else:
                            xt = torch.from_numpy(x_np).to(dev)
                            gt = torch.randn_like(hip.forward(xt))
                            fwd = (lambda xt=xt: hip.forward(xt))
                            both = (lambda xt=xt, gt=gt: hip.forward_backward(xt, gt))
                        for mode, fn in (("forward", fwd), ("forward+backward", both)):
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                best, reps = best_of(fn, sync if kind != "cupy" else cp.cuda.Device().synchronize, budget)
                            result["records"].append({"l_max": l_max, "n_max": n_max, "dtype": dt, "method": mname,
                                                      "n_rows": n, "mode": mode, "seconds": best, "reps": reps,
                                                      "rows_per_s": n / best})
                    except Exception as exc:  # noqa: BLE001 - report and go on
                        result["notes"].append(f"{mname} l{l_max}_n{n_max} {dt} N={n}: {type(exc).__name__}: {exc}")
                        traceback.print_exc(limit=2)
                    finally:
                        if cp is not None:
                            cp.get_default_memory_pool().free_all_blocks()
                        torch.cuda.empty_cache()
                line = "  ".join(f"{r['method']}:{r['rows_per_s']:.3g}" for r in result["records"]
                                 if (r["l_max"], r["n_max"], r["dtype"], r["n_rows"], r["mode"]) == (l_max, n_max, dt, n, "forward"))
                log(f"  {dt} N={n:.0e} forward rows/s  {line}")
    hip = {(r["l_max"], r["n_max"], r["dtype"], r["n_rows"], r["mode"]): r["rows_per_s"]
           for r in result["records"] if r["method"] == "hippynn"}
    for r in result["records"]:
        h = hip.get((r["l_max"], r["n_max"], r["dtype"], r["n_rows"], r["mode"]))
        if h:
            r["ratio_to_hippynn"] = r["rows_per_s"] / h
    for r in result["records"]:
        if (r["l_max"], r["n_max"], r["dtype"]) == (3, 4, "float32") and "ratio_to_hippynn" in r:
            log(f"  (3,4) f32 N={r['n_rows']:.0e} {r['mode']:16s} {r['method']:22s} {r['rows_per_s']:.3g} rows/s  "
                f"x{r['ratio_to_hippynn']:.2f} vs hippynn")
    for note in result["notes"]:
        log(f"note: {note}")
    out = args.out or Path(__file__).resolve().parent / "results" / (
        f"{datetime.date.today().isoformat()}-{socket.gethostname()}-gpu" + ("-quick" if args.quick else "") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
