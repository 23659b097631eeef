"""Plot a benchmark result: rows/s against N, one panel per (l_max, n_max) x (dtype, mode).

    .venv/bin/python benchmarks/plot.py benchmarks/results/<file>.json   # writes <file>.png next to it

Colours are methods; solid lines are 2 threads, dashed 1 thread.  Both axes are
logarithmic, so a method whose cost is linear in N is a flat line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLOURS = {
    "optinv": "#d62728",
    "optinv-h13": "#ff9896",
    "hippynn": "#1f77b4",
    "numpy-ref": "#7f7f7f",
    "sparse-poly": "#2ca02c",
    "sparse-poly-h13": "#98df8a",
}
STYLES = {1: "--", 2: "-"}


def plot(result: dict, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in result["records"] if "rows_per_s" in r]
    pairs = sorted({(r["l_max"], r["n_max"]) for r in recs})
    cols = [(dt, mode) for dt in ("float32", "float64") for mode in ("forward", "forward+backward")]
    cols = [c for c in cols if any((r["dtype"], r["mode"]) == c for r in recs)]
    if not pairs or not cols:
        raise ValueError("no timed records to plot")
    fig, axes = plt.subplots(len(pairs), len(cols), figsize=(4.6 * len(cols), 3.6 * len(pairs)),
                             squeeze=False, sharex=True)
    handles = {}
    for i, (l, n) in enumerate(pairs):
        for j, (dt, mode) in enumerate(cols):
            ax = axes[i][j]
            sel = [r for r in recs if (r["l_max"], r["n_max"], r["dtype"], r["mode"]) == (l, n, dt, mode)]
            K = next((r["K"] for r in sel if r["method"] == "optinv" or r["method"] == "sparse-poly"), None)
            for (meth, t) in sorted({(r["method"], r["threads"]) for r in sel}):
                pts = sorted((r["n_rows"], r["rows_per_s"]) for r in sel if r["method"] == meth and r["threads"] == t)
                (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], STYLES.get(t, ":"), marker="o", ms=3,
                               color=COLOURS.get(meth), label=f"{meth} {t}t")
                handles[f"{meth} {t}t"] = h
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"l_max={l}, n_max={n}" + (f" (K={K})" if K else "") + f"\n{dt}, {mode}", fontsize=10)
            if i == len(pairs) - 1:
                ax.set_xlabel("rows N")
            if j == 0:
                ax.set_ylabel("rows / s")
    m = result.get("machine", {})
    peak = m.get("peak_gflops", {}).get("float32", {})
    bw = m.get("bandwidth_gbs", {}).get("copy", {})
    fig.suptitle(
        f"optinv benchmarks, {result.get('date', '')[:10]}, {m.get('cpu_model', '?')} x{m.get('usable_cpus', '?')}; "
        f"peak f32 {', '.join(f'{t}t {v:.0f}' for t, v in peak.items())} GFLOP/s; "
        f"copy {', '.join(f'{t}t {v:.0f}' for t, v in bw.items())} GB/s" + ("  [quick]" if result.get("quick") else ""),
        fontsize=11,
    )
    labels = sorted(handles, key=lambda s: (list(COLOURS).index(s.split()[0]) if s.split()[0] in COLOURS else 99, s))
    fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=min(6, len(labels)), fontsize=9,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
