"""What a large output costs to allocate in PyTorch and in NumPy, and what it does to the C++ operators.

PyTorch's CPU allocator hands each large tensor fresh 4 KiB pages unless
``THP_MEM_ALLOC_ENABLE=1`` is set before it starts; NumPy asks for huge pages.
This times, at 1 thread in process CPU time (median of 10 calls after one
warm-up): ``torch.empty(...).fill_(1)``, ``np.empty(...).fill(1)``, the C++
operators' forward (``torch_cpp_invariants``, which advises huge pages on its
outputs) and the NumPy API's forward (pooled outputs), each in a fresh process
with and without ``THP_MEM_ALLOC_ENABLE``.

    python -m benchmarks.torch_alloc [--rows 2e6]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

_CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from optinv.generated import hop_l3_n4 as m
m.set_num_threads(1)
n = int(sys.argv[1])
def t(f, k=10):
    f()
    ts = []
    for _ in range(k):
        c0 = time.process_time(); r = f(); ts.append(time.process_time() - c0); del r
    return statistics.median(ts) * 1e3
x = torch.randn(n, m.D)
xn = x.numpy()
assert np.array_equal(m.torch_cpp_invariants(x).numpy(), m.forward(xn))
print(json.dumps({
    "torch_empty_fill_ms": t(lambda: torch.empty((n, m.K)).fill_(1.0)),
    "numpy_empty_fill_ms": t(lambda: np.empty((n, m.K), np.float32).fill(1.0)),
    "torch_cpp_forward_ms": t(lambda: m.torch_cpp_invariants(x)),
    "numpy_forward_ms": t(lambda: m.forward(xn)),
}))
"""


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=float, default=2e6)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    from benchmarks.peers import machine

    runs = {}
    for thp in ("unset", "1"):
        env = dict(os.environ)
        env.pop("THP_MEM_ALLOC_ENABLE", None)
        if thp != "unset":
            env["THP_MEM_ALLOC_ENABLE"] = thp
        out = subprocess.run([sys.executable, "-c", _CHILD, str(int(args.rows))], env=env, check=True,
                             capture_output=True, text=True).stdout
        runs[f"THP_MEM_ALLOC_ENABLE={thp}"] = json.loads(out.strip().splitlines()[-1])
        print(f"THP_MEM_ALLOC_ENABLE={thp}:", runs[f"THP_MEM_ALLOC_ENABLE={thp}"], flush=True)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "method": __doc__, "rows": int(args.rows), "load_average": os.getloadavg(),
              "machine": machine.cpu_info(), "versions": machine.versions(), "runs": runs}
    path = RESULTS / f"{args.name or datetime.date.today().isoformat() + '-torch-alloc'}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
