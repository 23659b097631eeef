"""Runtime of a generated optinv module: input checks, building and loading the kernels.

Modules committed inside optinv import this module; ``optinv compile`` copies it
verbatim into the package it writes (as ``_runtime.py``) so that package is
self-contained: it needs only NumPy and a C compiler (CuPy for the CUDA kernels,
PyTorch for the autograd adapter).  So it imports nothing from optinv.

The C library is compiled on first use into a per-user cache
(``$OPTINV_CACHE_DIR``, else ``$XDG_CACHE_HOME/optinv``, else ``~/.cache/optinv``),
keyed by a hash of the source, the compiler, its flags and this CPU.  Builds
write to a private temporary file and are moved into place atomically, so two
processes building at once are safe; a library whose recorded hash no longer
matches (a corrupt cache) is rebuilt.

Input arrays must be float32 or float64 of shape ``(n, width)``.  Arrays that
are not C-contiguous are copied (documented behaviour, never an error);
``out=`` buffers are written in place and must be C-contiguous with the exact
shape and dtype, because copying them would silently drop the result.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SUPPORTED_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
BASE_FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-ffp-contract=fast"]


class KernelBuildError(RuntimeError):
    """The C compiler could not build the kernels."""


def cache_root() -> Path:
    env = os.environ.get("OPTINV_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "optinv"


def _cpu_fingerprint() -> str:
    """Distinguishes CPUs so -march=native builds are never shared across different ones."""
    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "model name", "Features")):
                    text += line
    except OSError:
        pass
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compiler() -> str:
    """The C compiler: ``$CC``, else cc, gcc or clang on the PATH."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang") or "cc"


def compiler_version(cc: str) -> str:
    """The first line of ``cc --version`` (part of the cache key)."""
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def compiler_flags(cc: str) -> list[str]:
    """The flags every kernel library is built with (OpenMP where the compiler has it)."""
    flags = list(BASE_FLAGS)
    if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64"):
        flags.append("-march=native")
    if _supports_openmp(cc):
        flags.append("-fopenmp")
    return flags


def _supports_openmp(cc: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("#include <omp.h>\nint f(void) { return omp_get_max_threads(); }\n")
        try:
            res = subprocess.run([cc, "-fopenmp", "-fPIC", "-shared", str(src), "-o", str(Path(tmp) / "p.so")],
                                 capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False
        return res.returncode == 0


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_path(source: Path) -> tuple[Path, list[str], str]:
    """Where the library for this source, compiler and CPU lives in the cache."""
    cc = compiler()
    flags = compiler_flags(cc)
    key = hashlib.sha256(
        "\0".join([source.read_text(), cc, compiler_version(cc), " ".join(flags), _cpu_fingerprint()]).encode()
    ).hexdigest()[:24]
    return cache_root() / f"{source.parent.name}-{key}" / "kernels.so", flags, cc


def build(source: Path, force: bool = False, verbose: bool = False) -> Path:
    """Compile ``source`` into the cache (if needed) and return the library's path."""
    lib, flags, cc = library_path(source)
    stamp = lib.with_suffix(".sha256")
    if not force and lib.exists() and stamp.exists() and stamp.read_text().strip() == _sha256(lib):
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="kernels-", suffix=".so.tmp", dir=lib.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [cc, *flags, str(source), "-o", str(tmp), "-lm"]
    if verbose:
        print(" ".join(cmd), file=sys.stderr)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise KernelBuildError(f"building {source.name} failed ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
        digest = _sha256(tmp)
        os.replace(tmp, lib)  # atomic: readers see the old file or the new one, never half of one
        fd, tmp_stamp = tempfile.mkstemp(prefix="stamp-", dir=lib.parent)
        with os.fdopen(fd, "w") as f:
            f.write(digest + "\n")
        os.replace(tmp_stamp, stamp)
    finally:
        if tmp.exists():
            tmp.unlink()
    return lib


def check_array(name: str, arr, width: int, dtype=None, n: int | None = None) -> np.ndarray:
    """Validate one input: a float32/float64 array of shape (n, width); copy if not C-contiguous."""
    if not isinstance(arr, np.ndarray):
        if type(arr).__module__.startswith(("torch", "cupy")):
            raise TypeError(f"{name}: expected a NumPy array here, got {type(arr).__module__}.{type(arr).__name__}"
                            " (use the torch adapter or pass CuPy arrays to the CUDA path)")
        arr = np.asarray(arr)
    if arr.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} to match x, got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != width:
        expected = f"({n if n is not None else 'n'}, {width})"
        raise ValueError(f"{name}: expected shape {expected}, got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, {width}) to match x, got {arr.shape}")
    return np.ascontiguousarray(arr)


def check_out(out, n: int, width: int, dtype) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    if out.shape != (n, width) or out.dtype != dtype:
        raise ValueError(f"out: expected shape ({n}, {width}) and dtype {dtype}, got {out.shape} and {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a writeable C-contiguous array")
    return out


class CKernels:
    """The compiled C library of one generated module, loaded lazily with ctypes."""

    def __init__(self, package_dir: Path, kernels: dict[str, dict]):
        self.source = Path(package_dir) / "kernels.c"
        self.kernels = kernels  # name -> {"args": [(name, width)], "width": int}
        self._lib = None
        self.threads = 0  # 0: OpenMP decides (OMP_NUM_THREADS or all cores)

    def library(self) -> ctypes.CDLL:
        if self._lib is None:
            path = build(self.source)
            try:
                lib = ctypes.CDLL(str(path))
            except OSError:
                lib = ctypes.CDLL(str(build(self.source, force=True)))  # corrupt cache entry
            self._check_shape(lib)
            for name, spec in self.kernels.items():
                for suffix, ctype in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
                    fn = getattr(lib, f"optinv_{name}_{suffix}")
                    ptr = ctypes.POINTER(ctype)
                    fn.argtypes = [ptr] * (len(spec["args"]) + 1) + [ctypes.c_int64, ctypes.c_int]
                    fn.restype = ctypes.c_int64
            self._lib = lib
        return self._lib

    def _check_shape(self, lib: ctypes.CDLL) -> None:
        """Refuse a library built from sources that no longer match this module (it would overrun buffers)."""
        dim, count = self.kernels["forward"]["args"][0][1], self.kernels["forward"]["width"]
        if lib.optinv_dim() != dim or lib.optinv_count() != count:
            raise RuntimeError(
                f"{self.source}: the C sources describe D={lib.optinv_dim()}, K={lib.optinv_count()} but this module "
                f"was imported with D={dim}, K={count}; the package was regenerated after import: load it again"
            )

    def __call__(self, name: str, *arrays, out=None, threads: int | None = None) -> np.ndarray:
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 0):
            raise ValueError(f"threads: expected an integer >= 0 (0: all cores), got {threads!r}")
        spec = self.kernels[name]
        (xname, xwidth), *rest = spec["args"]
        x = check_array(xname, arrays[0], xwidth)
        n = x.shape[0]
        others = [check_array(a, arr, w, dtype=x.dtype, n=n) for (a, w), arr in zip(rest, arrays[1:])]
        out = np.empty((n, spec["width"]), dtype=x.dtype) if out is None else check_out(out, n, spec["width"], x.dtype)
        if any(np.shares_memory(out, a) for a in (x, *others)):
            raise ValueError("out: must not overlap the inputs (the kernels read inputs while writing out)")
        if n == 0:
            return out
        suffix = SUPPORTED_DTYPES[x.dtype]
        fn = getattr(self.library(), f"optinv_{name}_{suffix}")
        ptr = ctypes.POINTER(ctypes.c_float if suffix == "f32" else ctypes.c_double)
        args = [a.ctypes.data_as(ptr) for a in (x, *others)]
        fn(*args, out.ctypes.data_as(ptr), n, int(self.threads if threads is None else threads))
        return out


class CudaKernels:
    """The CUDA kernels of one generated module, compiled by CuPy (NVRTC) on first use."""

    BLOCK = 128

    def __init__(self, package_dir: Path, kernels: dict[str, dict]):
        self.source = Path(package_dir) / "kernels.cu"
        self.kernels = kernels
        self._module = None

    def module(self):
        if self._module is None:
            import cupy

            self._module = cupy.RawModule(code=self.source.read_text(), options=("--std=c++14",))
        return self._module

    def __call__(self, name: str, *arrays, out=None, threads=None, stream=None):
        """Run kernel ``name`` on CuPy arrays (``threads`` is accepted for a uniform dispatch and ignored)."""
        import cupy

        spec = self.kernels[name]
        (xname, xwidth), *rest = spec["args"]
        checked = []
        for k, ((aname, width), arr) in enumerate(zip(spec["args"], arrays)):
            if not isinstance(arr, cupy.ndarray):
                raise TypeError(f"{aname}: expected a CuPy array on the GPU, got {type(arr).__module__}.{type(arr).__name__}")
            if arr.dtype not in SUPPORTED_DTYPES:
                raise TypeError(f"{aname}: expected dtype float32 or float64, got {arr.dtype}")
            if arr.ndim != 2 or arr.shape[1] != width or (k and arr.shape[0] != checked[0].shape[0]):
                raise ValueError(f"{aname}: expected shape (n, {width}), got {arr.shape}")
            if k and (arr.dtype != checked[0].dtype or arr.device != checked[0].device):
                raise ValueError(f"{aname}: expected the dtype and device of {xname}")
            checked.append(cupy.ascontiguousarray(arr))
        x = checked[0]
        n = x.shape[0]
        with x.device:
            if out is None:
                out = cupy.empty((n, spec["width"]), dtype=x.dtype)
            elif out.shape != (n, spec["width"]) or out.dtype != x.dtype or not out.flags.c_contiguous:
                raise ValueError(f"out: expected a C-contiguous ({n}, {spec['width']}) {x.dtype} CuPy array")
            if n == 0:
                return out
            fn = self.module().get_function(f"optinv_{name}_{SUPPORTED_DTYPES[x.dtype]}")
            grid = ((n + self.BLOCK - 1) // self.BLOCK,)
            with stream if stream is not None else contextlib.nullcontext():
                fn(grid, (self.BLOCK,), (*checked, out, np.int64(n)))
        return out
