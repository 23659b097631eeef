"""This machine: peak FMA rate, copy bandwidth, CPU model, software versions.

Both rates are measured in the benchmark's own process with small C snippets
compiled at run time with the kernels' flags (:mod:`.cbuild`):

* peak: a loop of independent vector FMAs (12 independent accumulators of the widest
  native vector, ``acc = acc * a + b``, kept in registers), float32 and float64, per thread count; a flop
  is a multiply or an add, so one FMA lane is 2 flops;
* bandwidth: ``memcpy`` of a large buffer (1 thread) and a STREAM-style copy loop
  ``a[i] = b[i]`` with OpenMP (per thread count); bytes counted are read +
  written (write-allocate traffic not counted, as in STREAM).  Beyond the
  caches the same copy with streaming stores (no write-allocate reads) is also
  timed and the faster of the two is the bound, since the kernels stream large
  outputs too.

With one thread both are timed in the thread's CPU time, like the harness's
1-thread figures (on a busy machine wall time would measure the neighbours and
give a peak that is too low, which would flatter every fraction of it); with
more threads in wall time.

>>> m = measure_machine(threads=(1,), quick=True)
>>> m["peak_gflops"]["float32"]["1"] > 0
True
"""

from __future__ import annotations

import ctypes
import datetime
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata as importlib_metadata

from .cbuild import build_and_load, cflags, compiler_version

_PEAK_SRC = r"""
#include <omp.h>
#include <time.h>
#if defined(__AVX512F__)
#define VB 64
#elif defined(__AVX__)
#define VB 32
#else
#define VB 16
#endif
#define NACC 12
typedef float vf __attribute__((vector_size(VB)));
typedef double vd __attribute__((vector_size(VB)));

/* One thread: CPU time of the calling thread (a descheduled thread accrues none, as in the harness's
 * process_time); more threads: wall time. */
static double now_for(int threads) { struct timespec t; clock_gettime(threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int vector_bytes(void) { return VB; }

#define PEAK(NAME, V, T)                                                           \
double NAME(long iters, int threads, double *sink_out)                             \
{                                                                                  \
    double sink = 0;                                                               \
    double t0 = now_for(threads);                                                  \
    _Pragma("omp parallel num_threads(threads) reduction(+:sink)")                 \
    {                                                                              \
        const T s = (T)omp_get_thread_num();                                       \
        const V a = (V){0} + (T)0.9999999, b = (V){0} + (T)1e-7;                   \
        V c0 = (V){0} + (s + 1), c1 = (V){0} + (s + 2), c2 = (V){0} + (s + 3);      \
        V c3 = (V){0} + (s + 4), c4 = (V){0} + (s + 5), c5 = (V){0} + (s + 6);      \
        V c6 = (V){0} + (s + 7), c7 = (V){0} + (s + 8), c8 = (V){0} + (s + 9);      \
        V c9 = (V){0} + (s + 10), c10 = (V){0} + (s + 11), c11 = (V){0} + (s + 12); \
        for (long i = 0; i < iters; ++i) {                                         \
            c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b;    \
            c4 = c4 * a + b; c5 = c5 * a + b; c6 = c6 * a + b; c7 = c7 * a + b;    \
            c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b; \
        }                                                                          \
        V tot = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;      \
        for (int w = 0; w < (int)(VB / sizeof(T)); ++w) sink += tot[w];           \
    }                                                                              \
    double dt = now_for(threads) - t0;                                             \
    *sink_out = sink;                                                              \
    return 2.0 * NACC * (VB / sizeof(T)) * (double)iters * threads / dt;           \
}
PEAK(peak_f32, vf, float)
PEAK(peak_f64, vd, double)
"""

_BW_SRC = r"""
#include <omp.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static double now_for(int threads) { struct timespec t; clock_gettime(threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
void init(double *a, double *b, long n, int threads)
{
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < n; ++i) { a[i] = (double)i; b[i] = 0.0; }
}
double bw_memcpy(double *dst, const double *src, long n)
{
    double t0 = now();
    memcpy(dst, src, n * sizeof(double));
    return 2.0 * n * sizeof(double) / (now() - t0);
}
double bw_copy(double *restrict dst, const double *restrict src, long n, int threads)
{
    double t0 = now_for(threads);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < n; ++i) dst[i] = src[i];
    return 2.0 * n * sizeof(double) / (now_for(threads) - t0);
}
/* The same copy with streaming (non-temporal) stores, which skip the write-allocate read of each
 * destination line: beyond the caches the fastest copy, and so the bound for kernels that stream their
 * outputs.  Returns 0 where there are no streaming stores (then the plain copy is the bound). */
#if defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif
double bw_copy_nt(double *restrict dst, const double *restrict src, long n, int threads)
{
#if defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__)
#if defined(__AVX512F__)
    const long w = 8;
#elif defined(__AVX__)
    const long w = 4;
#else
    const long w = 2;
#endif
    if (((unsigned long)dst & 63) || n % (8 * 64)) return 0.0;
    double t0 = now_for(threads);
    #pragma omp parallel num_threads(threads)
    {
    #pragma omp for schedule(static) nowait
    for (long i = 0; i < n; i += w) {
#if defined(__AVX512F__)
        _mm512_stream_pd(dst + i, _mm512_loadu_pd(src + i));
#elif defined(__AVX__)
        _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
#else
        _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
#endif
    }
    _mm_sfence();  /* every thread drains its streaming stores before the clock stops */
    }
    return 2.0 * n * sizeof(double) / (now_for(threads) - t0);
#else
    (void)dst; (void)src; (void)n; (void)threads;
    return 0.0;
#endif
}
"""


def _peak_lib():
    lib = build_and_load(_PEAK_SRC, "machine_peak")
    for f in (lib.peak_f32, lib.peak_f64):
        f.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
        f.restype = ctypes.c_double
    return lib


def peak_gflops(threads=(1, 2), quick: bool = False) -> dict:
    """Best-of-5 FMA throughput in GFLOP/s: ``{"float32": {"1": ..}, "float64": {..}, "vector_bits": ..}``."""
    lib = _peak_lib()
    iters = 2_000_000 if quick else 20_000_000
    sink = ctypes.c_double()
    out = {"vector_bits": 8 * lib.vector_bytes()}
    for dtype, fn in (("float32", lib.peak_f32), ("float64", lib.peak_f64)):
        out[dtype] = {}
        for t in threads:
            fn(iters // 10, t, ctypes.byref(sink))  # warm-up (clock ramp, thread start)
            out[dtype][str(t)] = max(fn(iters, t, ctypes.byref(sink)) for _ in range(3 if quick else 5)) / 1e9
    return out


def copy_bandwidth(threads=(1, 2), quick: bool = False) -> dict:
    """Best-of-k copy bandwidth in GB/s (read + write bytes): memcpy (1 thread) and copy loop per thread count."""
    import numpy as np

    lib = copy_library()
    n = (32 if quick else 128) * 1024 * 1024 // 8  # 32 / 128 MiB per buffer, well beyond the caches
    a = np.empty(n)
    b = np.empty(n)
    lib.init(a.ctypes.data, b.ctypes.data, n, max(threads))
    reps = 3 if quick else 8
    out = {"buffer_bytes": n * 8, "memcpy": max(lib.bw_memcpy(b.ctypes.data, a.ctypes.data, n) for _ in range(reps)) / 1e9}
    out["copy"] = {str(t): max(lib.bw_copy(b.ctypes.data, a.ctypes.data, n, t) for _ in range(reps)) / 1e9 for t in threads}
    return out


def _size_bytes(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    return int(float(text[:-1]) * mult[text[-1]]) if text and text[-1] in mult else int(text)


def cache_info() -> dict:
    """Data and unified caches of CPU 0 from /sys (level, size in bytes, CPUs sharing it); {} if unreadable.

    ``last_level_bytes`` is the largest level's size: working sets beyond it stream from main memory.
    """
    root = "/sys/devices/system/cpu/cpu0/cache"
    levels = {}
    try:
        for entry in sorted(os.listdir(root)):
            if not entry.startswith("index"):
                continue
            d = os.path.join(root, entry)
            kind = open(os.path.join(d, "type")).read().strip()
            if kind not in ("Data", "Unified"):
                continue
            level = int(open(os.path.join(d, "level")).read())
            shared = open(os.path.join(d, "shared_cpu_list")).read().strip()
            levels[f"L{level}"] = {"bytes": _size_bytes(open(os.path.join(d, "size")).read()), "shared_cpu_list": shared}
    except OSError:
        return {}
    if levels:
        last = max(levels, key=lambda k: int(k[1:]))
        levels["last_level"] = last
        levels["last_level_bytes"] = levels[last]["bytes"]
    return levels


def lscpu() -> dict:
    """``lscpu`` fields that identify the machine (model, cores, caches), or {} without lscpu."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)", "L1d cache",
            "L2 cache", "L3 cache", "Hypervisor vendor", "CPU max MHz")
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keep:
            fields[key.strip()] = value.strip()
    return fields


def copy_library():
    """The copy loops of ``_BW_SRC``, built and typed: ``init``, ``bw_memcpy``, ``bw_copy``, ``bw_copy_nt``."""
    lib = build_and_load(_BW_SRC, "machine_bw")
    P = ctypes.c_void_p
    lib.init.argtypes = [P, P, ctypes.c_long, ctypes.c_int]
    lib.bw_memcpy.argtypes = [P, P, ctypes.c_long]
    lib.bw_memcpy.restype = ctypes.c_double
    for copy in (lib.bw_copy, lib.bw_copy_nt):
        copy.argtypes = [P, P, ctypes.c_long, ctypes.c_int]
        copy.restype = ctypes.c_double
    return lib


def bandwidth_by_level(threads=(1, 2), quick: bool = False) -> dict:
    """Copy bandwidth (GB/s, read + write bytes) for working sets in L2, in the last-level cache and in DRAM.

    Sizes are total bytes of the two buffers: half of (L2 per core x threads), half of the last-level
    cache, and four times the last-level cache, so the three regimes of a kernel's roofline are measured
    on this machine rather than assumed.
    """
    import numpy as np

    caches = cache_info()
    llc = caches.get("last_level_bytes", 32 * 1024 ** 2)
    l2 = caches.get("L2", {}).get("bytes", 1024 ** 2)
    lib = copy_library()
    out = {}
    for t in threads:
        sizes = {"L2": l2 * t // 2, "LLC": llc // 2, "DRAM": 4 * llc}
        out[str(t)] = {}
        for level, total in sizes.items():
            n = max(total // 16 // 512 * 512, 1024)  # two double buffers (whole 64-byte lines per thread)
            a, b = np.empty(n), aligned_doubles(n)
            lib.init(a.ctypes.data, b.ctypes.data, n, t)
            reps = max(3, min(200, int((2e9 if not quick else 2e8) / (16 * n))))
            rec = {"bytes": 16 * n, "gbs": max(lib.bw_copy(b.ctypes.data, a.ctypes.data, n, t) for _ in range(reps)) / 1e9}
            if level == "DRAM":  # beyond the caches the streaming copy is faster: the bound is the better of the two
                rec["plain_gbs"] = rec["gbs"]
                rec["streaming_gbs"] = max(lib.bw_copy_nt(b.ctypes.data, a.ctypes.data, n, t) for _ in range(reps)) / 1e9
                rec["gbs"] = max(rec["gbs"], rec["streaming_gbs"])
            out[str(t)][level] = rec
    return out


def aligned_doubles(n: int):
    """An (n,) float64 array starting on a 64-byte boundary (streaming stores write whole lines)."""
    import numpy as np

    raw = np.empty(n + 8)
    start = (-raw.ctypes.data % 64) // 8
    return raw[start:start + n]


def cpu_info() -> dict:
    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        model = platform.processor() or "unknown"
    simd = [f for f in ("avx512f", "avx2", "fma", "avx") if f in flags.split()]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "logical_cpus": os.cpu_count(), "usable_cpus": affinity, "simd": simd,
            "host": socket.gethostname(), "platform": platform.platform()}


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    import numpy

    out = {
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "sympy": _version("sympy"),
        "torch": _version("torch"),
        "hippynn": _version("hippynn"),
        "matplotlib": _version("matplotlib"),
        "optinv": _version("optinv"),
        "gcc": compiler_version(),
        "cflags": " ".join(cflags()),
    }
    try:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        if head.returncode == 0:
            out["optinv_git"] = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return out


def measure_machine(threads=(1, 2), quick: bool = False) -> dict:
    return {
        **cpu_info(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "peak_gflops": peak_gflops(threads, quick),
        "bandwidth_gbs": copy_bandwidth(threads, quick),
    }
