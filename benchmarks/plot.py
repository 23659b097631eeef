"""Plot a benchmark result (1 thread, CPU time): rows/s against N and latency per call.

    .venv/bin/python benchmarks/plot.py benchmarks/results/<file>.json   # writes <file>.png next to it

One row of panels per (l_max, n_max, dtype): forward rows/s, forward+backward
rows/s (both against N, log-log: a method whose cost is linear in N is a flat
line; the dotted black line is the cache-aware roofline bound of optinv's
kernel), and microseconds per call at small N (solid forward, dashed
forward+backward).  Colours are methods.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLOURS = {
    "optinv": "#d62728",
    "optinv+out": "#8c564b",
    "optinv-torch": "#ff7f0e",
    "optinv-layer": "#bcbd22",
    "optinv-h13": "#ff9896",
    "hippynn": "#1f77b4",
    "hippynn-compiled": "#17becf",
    "numpy-ref": "#7f7f7f",
    "sparse-poly": "#2ca02c",
    "sparse-poly+out": "#98df8a",
    "sparse-poly-h13": "#9467bd",
}


def plot(result: dict, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in result["records"] if "rows_per_s" in r and r["threads"] == 1]
    keys = sorted({(r["l_max"], r["n_max"], r["dtype"]) for r in recs if r["section"] == "throughput"})
    fig, axes = plt.subplots(len(keys) or 1, 3, figsize=(16, 3.6 * max(len(keys), 1)), squeeze=False)
    for row, key in enumerate(keys):
        sel = [r for r in recs if (r["l_max"], r["n_max"], r["dtype"]) == key]
        for col, mode in enumerate(("forward", "forward+backward")):
            ax = axes[row][col]
            thr = [r for r in sel if r["section"] == "throughput" and r["mode"] == mode]
            for meth in dict.fromkeys(r["method"] for r in thr):
                pts = sorted((r["n_rows"], r["rows_per_s"]) for r in thr if r["method"] == meth)
                ax.plot(*zip(*pts), marker="o", ms=3, color=COLOURS.get(meth), label=meth)
            bound = sorted((r["n_rows"], r["roofline"]["bound_rows_s"]) for r in thr if r["method"] == "optinv+out")
            if bound:
                ax.plot(*zip(*bound), ":", color="k", label="roofline (optinv)")
            ax.set(xscale="log", yscale="log", xlabel="rows N", ylabel="rows/s (1 thread, CPU time)",
                   title=f"({key[0]},{key[1]}) {key[2]} {mode}")
            ax.grid(True, which="both", alpha=0.3)
        ax = axes[row][2]
        lat = [r for r in sel if r["section"] == "latency"]
        if not lat:
            ax.axis("off")
            continue
        for meth in dict.fromkeys(r["method"] for r in lat):
            for mode, style in (("forward", "-"), ("forward+backward", "--")):
                pts = sorted((r["n_rows"], r["median_s"] * 1e6) for r in lat if r["method"] == meth and r["mode"] == mode)
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", ms=3, color=COLOURS.get(meth),
                            label=meth if mode == "forward" else None)
        ax.set(xscale="log", yscale="log", xlabel="rows N", ylabel="us per call (1 thread, CPU time)",
               title=f"({key[0]},{key[1]}) {key[2]} latency (dashed: fwd+bwd)")
        ax.grid(True, which="both", alpha=0.3)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(len(handles), 7), fontsize=8)
    fig.suptitle(f"optinv benchmark {result['date']} ({result['machine'].get('cpu_model', '')}, 1 thread, CPU time)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    out = Path(path)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    src = Path(argv[0])
    print(plot(json.loads(src.read_text()), src.with_suffix(".png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
