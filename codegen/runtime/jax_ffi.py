"""The C kernels of a generated optinv module in JAX through the XLA FFI, with ``jax.custom_vjp``.

Committed modules import this module; ``optinv compile`` copies it verbatim into
the package it writes (as ``_jax_ffi.py``), so it imports nothing from optinv:
the package hands in its runtime (:mod:`native`, for building and verifying
libraries) and the reverse-mode wiring (:func:`jax_callback.differentiable`).

The handlers (``jax_ffi.cc`` in the package, rendered from
``templates/jax_ffi.cc.j2``) are the same text for every module, so one
library serves all: it is compiled on first use with a C++ compiler against
the header-only XLA FFI API that jaxlib ships (``jax.ffi.include_dir()``) into
the optinv cache under the C kernels' rules (private 0700 directories, owner
checks, a build lock, the sha256 of the source checked after loading and
before anything is registered).  Its handlers are registered once per process
as XLA custom-call targets whose names carry a hash of the library's path and
source, so two libraries never share a name.  A module binds its own verified
C kernels under the sha256 of its ``kernels.c``; each call names that key.

Compared with :mod:`jax_callback` (``pure_callback``), a call does not cross
into Python: XLA calls the C kernel directly.  Like it, only reverse mode is
defined (``grad`` to second order; no ``jvp``/``jacfwd``); ``jit`` and
``vmap`` work; float32 and float64.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import threading
from pathlib import Path

import jax
import numpy as np

#: The kernels, in the order of the handlers' table (``optinv_ffi_bind``), each float32 then float64.
KERNELS = ("forward", "vjp", "jvp", "hvp")
SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def cxx_compiler() -> str:
    """The C++ compiler: ``$CXX``, else c++, g++ or clang++ on the PATH."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++") or "c++"


def toolchain(runtime):
    """How the handlers are built: C++17 against jaxlib's FFI headers (jaxlib's version is part of the cache key)."""
    import jaxlib

    flags = ("-O2", "-std=c++17", "-fPIC", "-shared", "-w", f"-DOPTINV_JAXLIB_VERSION={jaxlib.__version__}",
             "-I", jax.ffi.include_dir())
    return runtime.Toolchain(cxx_compiler(), flags, language="c++", libs=(), entry="jax_ffi", library="jax_ffi.so",
                             what="C++ compiler", env="CXX", install="g++ or clang++")


class Handlers:
    """The handlers' library, verified and registered with XLA (one per library path and source, per process)."""

    def __init__(self, source: Path, runtime):
        tc = toolchain(runtime)
        self.lib = runtime.load_verified(source, tc)  # refused (rebuilt) unless it carries this source's sha256
        if self.lib.optinv_ffi_kernel_count() != len(KERNELS):
            raise RuntimeError(f"{source}: the handlers know {self.lib.optinv_ffi_kernel_count()} kernels, "
                               f"this runtime {len(KERNELS)}; regenerate the package")
        tag = hashlib.sha256(f"{runtime.library_path(source, tc)[0]}\0{runtime.source_identity(source)}".encode())
        self.targets = {}
        for kernel in KERNELS:
            for suffix in SUFFIXES.values():
                name = f"optinv_ffi_{tag.hexdigest()[:16]}_{kernel}_{suffix}"
                handler = getattr(self.lib, f"optinv_ffi_{kernel}_{suffix}")
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
                self.targets[kernel, suffix] = name
        self.lib.optinv_ffi_bind.argtypes = [ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64,
                                             ctypes.POINTER(ctypes.c_void_p)]
        self.lib.optinv_ffi_bind.restype = ctypes.c_int

    def bind(self, key: str, D: int, K: int, c_library: ctypes.CDLL) -> None:
        """Bind a module's C kernels (from its verified library) under ``key``."""
        table = (ctypes.c_void_p * (2 * len(KERNELS)))(*(
            ctypes.cast(getattr(c_library, f"optinv_{kernel}_{suffix}"), ctypes.c_void_p).value
            for kernel in KERNELS for suffix in SUFFIXES.values()))
        if self.lib.optinv_ffi_bind(key.encode("ascii"), D, K, table) != 0:
            raise RuntimeError(f"optinv_ffi_bind refused module {key} (D={D}, K={K})")


_HANDLERS: dict[tuple[str, str], Handlers] = {}
_HANDLERS_LOCK = threading.Lock()


def handlers(source: Path, runtime) -> Handlers:
    """The handlers built from ``source``, loaded and registered once per process."""
    key = (str(runtime.library_path(source, toolchain(runtime))[0]), runtime.source_identity(source))
    with _HANDLERS_LOCK:
        if key not in _HANDLERS:
            _HANDLERS[key] = Handlers(source, runtime)
        return _HANDLERS[key]


def bind(source, D: int, K: int, c_kernels, runtime, differentiable):
    """``invariants(x)``: ``(..., D)`` -> ``(..., K)`` on the C kernels through the XLA FFI, differentiable twice.

    ``source``: the package's ``jax_ffi.cc``; ``c_kernels``: its
    :class:`native.CKernels` (the kernels bound, and the thread count each
    call is traced with); ``runtime``: :mod:`native`; ``differentiable``:
    :func:`jax_callback.differentiable`.  Builds, verifies and registers the
    handlers now (a few seconds the first time; then cached).
    """
    shim = handlers(Path(source), runtime)
    key = runtime.source_identity(c_kernels.source)  # the sha256 of the kernels the verified library was built from
    shim.bind(key, D, K, c_kernels.library())

    def call(name: str, width: int, *args):
        dtype = np.dtype(args[0].dtype)
        if dtype not in SUFFIXES:
            raise TypeError(f"x: expected dtype float32 or float64, got {dtype}")
        for arg in args[1:]:
            if np.dtype(arg.dtype) != dtype:
                raise TypeError(f"{name}: expected every input in {dtype}, got {np.dtype(arg.dtype)}")
        out = jax.ShapeDtypeStruct(args[0].shape[:-1] + (width,), dtype)
        # broadcast_all: the handlers flatten leading dimensions into rows, so a vmapped call is one bigger call
        return jax.ffi.ffi_call(shim.targets[name, SUFFIXES[dtype]], out, vmap_method="broadcast_all")(
            *args, module=key, threads=np.int64(c_kernels.threads))

    return differentiable(D, K, call)
