"""Speed of the symbolic engine: basis searches timed end to end (issue 2's targets).

Targets: l_max=3, n_max=4 under 2 s and l_max=6, n_max=6 under 60 s on a 2-core
machine (issue 2); flexible (stratum-aware) l_max=3, n_max=4 under 5 s and
l_max=4, n_max=4 under 30 s (issue 9).  Each search runs in a fresh process (no warm caches), best of three;
also timed: the README table (l_max 0..5 x n_max 1..6) and a few multi-channel
and SO(3) signatures.  Results go to benchmarks/results/engine-<date>-<host>.json.

    .venv/bin/python benchmarks/engine_speed.py
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peers.machine import cpu_info, versions  # noqa: E402

HERE = Path(__file__).resolve().parent
CASES = [
    ("l_max=3 n_max=4", ["basis", "--l-max", "3", "--n-max", "4"], 2.0),
    ("l_max=6 n_max=6", ["basis", "--l-max", "6", "--n-max", "6"], 60.0),
    ("flexible l_max=3 n_max=4", ["basis", "--l-max", "3", "--n-max", "4", "--flexible"], 5.0),
    ("flexible l_max=4 n_max=4", ["basis", "--l-max", "4", "--n-max", "4", "--flexible"], 30.0),
    ("flexible l_max=3 n_max=5", ["basis", "--l-max", "3", "--n-max", "5", "--flexible"], None),
    ("l_max=3 n_max=4 SO3", ["basis", "--l-max", "3", "--n-max", "4", "--group", "SO3"], None),
    ("3 channels of ranks 0..2, n_max=4", ["basis", "--tensors",
                                           "s0:0,s1:0,s2:0,v0:1,v1:1,v2:1,q0:2,q1:2,q2:2", "--n-max", "4"], None),
    ("l_max=5 n_max=3 (exhausts degree 3)", ["basis", "--l-max", "5", "--n-max", "3"], None),
    ("README table l_max 0..5 x n_max 1..6", ["table"], None),
    ("ACE n_rad=4 l_max=3 nu_max=4", ["ace", "--n-rad", "4", "--l-max", "3", "--nu-max", "4"], None),
]


def time_command(argv: list[str], repeats: int = 3) -> tuple[float, float]:
    """Best wall time and the child's CPU time of that run (the CPU time is robust on a busy machine)."""
    best, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        before = os.times()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "optinv", *argv, "--quiet"], check=True, capture_output=True)
        wall = time.perf_counter() - start
        after = os.times()
        if wall < best:
            best = wall
            cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return best, cpu


def main() -> int:
    rows = []
    for label, argv, target in CASES:
        seconds, cpu = time_command(argv)
        verdict = "" if target is None else ("  (target < %g s: %s)" % (target, "met" if seconds < target else "MISSED"))
        print(f"{label:45s} {seconds:8.3f} s wall {cpu:8.3f} s cpu{verdict}", flush=True)
        rows.append({"case": label, "argv": argv, "seconds": seconds, "cpu_seconds": cpu, "target_seconds": target})
    stamp = datetime.datetime.now(datetime.timezone.utc)
    out = HERE / "results" / f"engine-{stamp:%Y-%m-%d}-{platform.node() or 'host'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": stamp.isoformat(), "machine": cpu_info(), "versions": versions(),
                               "load_average": os.getloadavg(),
                               "note": "wall time of `python -m optinv ...` in a fresh process (imports included), "
                                       "best of 3, with that run's CPU time",
                               "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
