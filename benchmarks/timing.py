"""Timing with a minimum number of samples per method, median and spread.

On a shared machine wall time measures the neighbours as much as the code, so
the headline clock is the process's CPU time (``time.process_time``) with one
thread: a descheduled process accrues none.  Wall time (``time.perf_counter``)
is used for two threads, where CPU time would hide a thread waiting for its
partner; those figures are labelled as taken on a busy machine.

Every method gets the same treatment: two warm-up calls (the first one's time,
compilation included, is recorded), then at least ``min_samples`` timed
samples, more while the samples add up to less than ``min_total`` seconds.  A
sample repeats the call ``inner`` times when one call is shorter than
``target_sample`` seconds, so microsecond calls are not dominated by the
clock's own cost.
"""

from __future__ import annotations

import time

import numpy as np

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def measure(fn, clock: str = "cpu", min_samples: int = 10, min_total: float = 0.2, max_samples: int = 200,
            target_sample: float = 0.002) -> dict:
    """Per-call seconds of ``fn()``: median, quartiles, min/max, number of samples and calls per sample."""
    now = CLOCKS[clock]
    t0 = now()
    fn()
    first = now() - t0
    t0 = now()
    fn()
    est = max(now() - t0, 1e-7)
    inner = max(1, int(target_sample / est))
    samples: list[float] = []
    while len(samples) < min_samples or (sum(samples) * inner < min_total and len(samples) < max_samples):
        t0 = now()
        for _ in range(inner):
            fn()
        samples.append((now() - t0) / inner)
    s = np.asarray(samples)
    q1, med, q3 = np.percentile(s, [25, 50, 75])
    return {
        "clock": clock, "median_s": float(med), "q1_s": float(q1), "q3_s": float(q3), "min_s": float(s.min()),
        "max_s": float(s.max()), "samples": len(samples), "calls_per_sample": inner, "first_call_s": first,
        "spread": float((q3 - q1) / med) if med > 0 else 0.0,
    }
