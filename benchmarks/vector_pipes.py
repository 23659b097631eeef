"""Which 512-bit vector instructions compete for the same pipes on this CPU.

The generated C kernels spend their time in three kinds of vector work: the
arithmetic (FMAs, multiplies, adds), the in-register transposes (in-lane
unpacks and shuffles, 128-bit block shuffles, two-source permutes) and blends.
Whether a transpose slows the arithmetic down depends on which pipes each kind
issues to, which differs between CPUs and is not in the vendor's guide. This
times each kind alone and in pairs: 24 independent dependency chains, one
instruction of each listed kind per chain per iteration, registers only,
1 thread, in the thread's CPU time, and reports instructions per cycle (the
cycle from a chain of dependent scalar adds, one per cycle). Two kinds that
reach about their single throughput each when paired use different pipes;
two whose pair reaches only what one reaches alone share them.

    python -m benchmarks.vector_pipes [--iterations 2e7] [--name NAME]

Needs AVX-512 (x86-64); elsewhere it says so and writes nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CHAINS = 24  # enough independent chains that latency never binds (24 + 3 constants fit in 32 registers)

#: name -> the instruction(s) each chain issues per iteration ({i}: this chain; two-source kinds read
#: it twice, so no chain waits on another).
KINDS = {
    "fma": ["_mm512_fmadd_ps(v{i}, c, d)"],
    "mul": ["_mm512_mul_ps(v{i}, c)"],
    "add": ["_mm512_add_ps(v{i}, d)"],
    "shufps (in-lane)": ["_mm512_shuffle_ps(v{i}, v{i}, 0x4e)"],
    "unpcklps (in-lane)": ["_mm512_unpacklo_ps(v{i}, v{i})"],
    "shuf_f32x4 (128-bit blocks)": ["_mm512_shuffle_f32x4(v{i}, v{i}, 0x4e)"],
    "permt2ps (two-source permute)": ["_mm512_permutex2var_ps(v{i}, ix, v{i})"],
    "blendmps": ["_mm512_mask_blend_ps(k, v{i}, c)"],
}
PAIRS = [
    ("fma", "add"),
    ("fma", "shufps (in-lane)"),
    ("fma", "unpcklps (in-lane)"),
    ("fma", "shuf_f32x4 (128-bit blocks)"),
    ("fma", "permt2ps (two-source permute)"),
    ("fma", "blendmps"),
    ("add", "shufps (in-lane)"),
    ("add", "shuf_f32x4 (128-bit blocks)"),
    ("add", "blendmps"),
]


def _test_function(index: int, ops: list[str]) -> str:
    body = []
    for i in range(CHAINS):
        for t, op in enumerate(ops):  # each kind of a pair works on its own rotation of the chains
            chain = (i + 4 * t) % CHAINS
            body.append(f"v{chain} = " + op.format(i=chain) + ";")
    regs = " ".join(f"__m512 v{i} = _mm512_set1_ps(1.0f + {i}e-7f);" for i in range(CHAINS))
    # an in-out operand counts twice against GCC's limit of 30 per asm statement: 12 chains per statement
    keep = " ".join('__asm__ volatile("" : ' + ", ".join(f'"+v"(v{i})' for i in range(lo, min(lo + 12, CHAINS))) + ");"
                    for lo in range(0, CHAINS, 12))
    total = " + ".join(f"_mm512_reduce_add_ps(v{i})" for i in range(CHAINS))
    return f"""
double pipes_test_{index}(long iterations, float *sink)
{{
    {regs}
    const __m512 c = _mm512_set1_ps(0.999999f), d = _mm512_set1_ps(1e-9f);
    const __m512i ix = _mm512_set_epi32(1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24);
    const __mmask16 k = 0x0F0F;
    (void)c; (void)d; (void)ix; (void)k;
    const double t0 = cpu_seconds();
    for (long it = 0; it < iterations; ++it) {{
        {" ".join(body)}
        {keep}  /* keeps every chain in a register and every instruction live */
    }}
    const double t1 = cpu_seconds();
    *sink = {total};
    return (t1 - t0) / ((double)iterations * {CHAINS * len(ops)});
}}"""


def source(tests: list[list[str]]) -> str:
    functions = "".join(_test_function(i, ops) for i, ops in enumerate(tests))
    return f"""/* benchmarks/vector_pipes.py: throughput of 512-bit vector instruction kinds, alone and paired. */
#define _POSIX_C_SOURCE 199309L
#include <time.h>
static double cpu_seconds(void)
{{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}}
int pipes_available(void);
double pipes_cycle_seconds(long iterations);
#if defined(__AVX512F__) && defined(__x86_64__)
#include <immintrin.h>
int pipes_available(void) {{ return 1; }}
/* Seconds per cycle: a chain of dependent integer adds retires one per cycle. */
double pipes_cycle_seconds(long iterations)
{{
    long x = 0;
    const double t0 = cpu_seconds();
    for (long i = 0; i < iterations; ++i)
        __asm__ volatile("add $1, %0\\n\\tadd $1, %0\\n\\tadd $1, %0\\n\\tadd $1, %0" : "+r"(x));
    return (cpu_seconds() - t0) / (4.0 * iterations);
}}
{functions}
#else
int pipes_available(void) {{ return 0; }}
double pipes_cycle_seconds(long iterations) {{ (void)iterations; return 0.0; }}
#endif
"""


def measure(iterations: int = 20_000_000, repeats: int = 3) -> dict | None:
    """Instructions per cycle per kind and per pair (best of ``repeats``); None without AVX-512."""
    from benchmarks.peers.cbuild import build_and_load

    tests = [ops for ops in KINDS.values()] + [KINDS[a] + KINDS[b] for a, b in PAIRS]
    names = list(KINDS) + [f"{a} + {b}" for a, b in PAIRS]
    lib = build_and_load(source(tests), "vector_pipes")
    if not lib.pipes_available():
        return None
    lib.pipes_cycle_seconds.argtypes = [ctypes.c_long]
    lib.pipes_cycle_seconds.restype = ctypes.c_double
    cycle = min(lib.pipes_cycle_seconds(iterations * 4) for _ in range(repeats))
    sink = ctypes.c_float()
    per_cycle = {}
    for index, name in enumerate(names):
        fn = getattr(lib, f"pipes_test_{index}")
        fn.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_float)]
        fn.restype = ctypes.c_double
        seconds = min(fn(iterations, ctypes.byref(sink)) for _ in range(repeats))
        per_cycle[name] = round(cycle / seconds, 2)
    return {"clock_ghz": round(1e-9 / cycle, 2), "instructions_per_cycle": per_cycle}


def main(argv=None) -> Path | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=float, default=2e7)
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    from benchmarks.peers import machine

    result = measure(int(args.iterations))
    if result is None:
        print("vector_pipes: this CPU (or compiler) has no AVX-512; nothing measured")
        return None
    for name, ipc in result["instructions_per_cycle"].items():
        print(f"{name:<55} {ipc:5.2f} per cycle")
    record = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "method": __doc__, "iterations": int(args.iterations), "chains": CHAINS,
              "load_average": os.getloadavg(), "machine": machine.cpu_info(), "versions": machine.versions(),
              **result}
    path = RESULTS / f"{args.name or datetime.date.today().isoformat() + '-vector-pipes'}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
