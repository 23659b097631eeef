"""The CUDA kernels run on the CPU: ``kernels.cu`` compiled as host C++ with a shim for the thread indices.

No GPU has to be present: the shim defines ``__global__`` away and makes
``threadIdx``/``blockIdx``/``blockDim``/``gridDim`` plain globals; a generated
launcher loops over every block and thread of the grid the CUDA runtime would
launch (:attr:`CudaKernels.BLOCK` threads per block), plus one whole extra
block whose threads are all past the last row.  Output rows past ``n`` are
filled with a sentinel and must come back untouched, so indexing errors
(wrong values) and launch-bound errors (writes past the end) are caught by
the same harness that checks the GPU path, on any machine with a C++ compiler.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from optinv.codegen.runtime.native import CudaKernels, cache_root

SHIM = """// optinv host shim: CUDA kernels as plain C++ functions, thread indices as globals.
#include <cstdint>
struct optinv_dim3 { unsigned int x, y, z; };
static optinv_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
"""
#: Rows past ``n`` in the output buffer, filled with SENTINEL, that no thread may write.
GUARD_ROWS = 3
SENTINEL = -7.25e33
FLAGS = ["-O1", "-std=c++14", "-fPIC", "-shared", "-x", "c++"]


def cxx_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def cxx_unavailable() -> str | None:
    """Why the host shim cannot run here, or None."""
    return None if cxx_compiler() else "no C++ compiler (c++, g++ or clang++; or $CXX) for the CUDA host shim"


def launcher_source(kernels: dict[str, dict]) -> str:
    """``extern "C"`` launchers that run every (block, thread) of a 1-D grid sequentially."""
    out = []
    for name, spec in kernels.items():
        for real, suffix in (("float", "f32"), ("double", "f64")):
            params = "".join(f"const {real} *{a}, " for a, _ in spec["args"])
            args = "".join(f"{a}, " for a, _ in spec["args"])
            out.append(f"""
extern "C" void optinv_host_{name}_{suffix}({params}{real} *out, long long n, unsigned grid, unsigned block)
{{
    gridDim = {{grid, 1, 1}};
    blockDim = {{block, 1, 1}};
    for (unsigned b = 0; b < grid; ++b) {{
        blockIdx = {{b, 0, 0}};
        for (unsigned t = 0; t < block; ++t) {{
            threadIdx = {{t, 0, 0}};
            optinv_{name}_{suffix}({args}out, n);
        }}
    }}
}}
""")
    return "".join(out)


def build_host_library(cu_source: Path, kernels: dict[str, dict]) -> Path:
    """Compile shim + ``kernels.cu`` + launchers into a shared library (cached by content)."""
    cxx = cxx_compiler()
    if cxx is None:
        raise RuntimeError(cxx_unavailable())
    text = SHIM + "\n#line 1 \"kernels.cu\"\n" + cu_source.read_text() + launcher_source(kernels)
    key = hashlib.sha256("\0".join([text, cxx, " ".join(FLAGS)]).encode()).hexdigest()[:24]
    lib = cache_root() / f"cuda-host-{key}" / "kernels_host.so"
    if lib.exists():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        src, so = Path(tmp) / "kernels_host.cpp", Path(tmp) / "kernels_host.so"
        src.write_text(text)
        res = subprocess.run([cxx, *FLAGS, str(src), "-o", str(so)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"host compile of {cu_source} failed:\n{res.stderr[-4000:]}")
        os.replace(so, lib)  # atomic: concurrent builders never see half a library
    return lib


_LIBS: dict[Path, ctypes.CDLL] = {}


def host_library(package) -> ctypes.CDLL:
    source = Path(package.PACKAGE_DIR) / "kernels.cu"
    if not source.is_file():
        raise FileNotFoundError(f"{package.PACKAGE_DIR}: no kernels.cu; the package was generated without the "
                                "'cuda' target")
    path = build_host_library(source, package.KERNELS)
    if path not in _LIBS:
        _LIBS[path] = ctypes.CDLL(str(path))
    return _LIBS[path]


def call_cuda_host(package, op: str, arrays: list[np.ndarray], block: int = CudaKernels.BLOCK):
    """Run kernel ``op`` through the host shim on the launch grid the CUDA runtime uses, plus one extra block."""
    lib = host_library(package)
    spec = package.KERNELS[op]
    dtype = arrays[0].dtype
    n = arrays[0].shape[0]
    out = np.full((n + GUARD_ROWS, spec["width"]), SENTINEL, dtype=dtype)
    suffix = "f32" if dtype == np.float32 else "f64"
    ptr = ctypes.POINTER(ctypes.c_float if suffix == "f32" else ctypes.c_double)
    grid = (n + block - 1) // block + 1  # the runtime's grid, and a block of threads that must all return
    fn = getattr(lib, f"optinv_host_{op}_{suffix}")
    fn.restype = None
    fn(*(np.ascontiguousarray(a).ctypes.data_as(ptr) for a in arrays), out.ctypes.data_as(ptr),
       ctypes.c_longlong(n), ctypes.c_uint(grid), ctypes.c_uint(block))
    if not np.all(out[n:] == dtype.type(SENTINEL)):
        raise AssertionError(f"{op}: a thread past the last row (n={n}) wrote into the output")
    return out[:n]
