"""The C kernels of a generated optinv module as PyTorch operators registered from C++ (``TORCH_LIBRARY``).

Committed modules import this module; ``optinv compile`` copies it verbatim into
the package it writes (as ``_torch_cpp.py``), so it imports nothing from optinv:
the package hands it its native runtime (the build cache rules live there).

The package's ``torch_ops.cpp`` (operators ``forward``, ``vjp``, ``jvp``, ``hvp``
and ``invariants`` under ``optinv_cpp_<name>_<sha256 of kernels.c, 12 hex>``,
with meta and autograd kernels) is compiled with ``kernels.c`` into one shared
library in the per-user build cache, under the same rules as the C library:
private (0700, owned) directories, one build per entry under a ``flock``,
atomic rename, a stamp with the library's sha256.  The library carries the
sha256 of its exact sources (``torch_ops.cpp`` and ``kernels.c``) as a marker
string; it is checked in the file's bytes *before* ``torch.ops.load_library``
(a library's static initialisers run when it is loaded, so checking afterwards
would be too late) and again through the loaded symbol.  A library that fails
either check is rebuilt, never loaded.

A process that only does ``torch.ops.load_library(path)`` (LAMMPS, a C++ program
through ``torch::jit::load``, or Python without optinv) can then run TorchScript
models that call these operators.  Building needs a C compiler, a C++ compiler
and PyTorch's headers (part of the pip wheel); not ninja.

CPU tensors only (CUDA tensors are refused by name): a CUDA kernel at these
operators' CUDA dispatch key would have to be compiled by ``nvcc`` and linked
against ``libtorch_cuda``/``libc10_cuda``; the CPU build of PyTorch this project
is developed and tested with ships neither those libraries nor a CUDA toolkit,
so such a kernel could be neither built nor tested here.  On CUDA tensors use
the ``torch.library`` operators (``torch_library_invariants``, registered from
Python, CUDA kernels through CuPy) or ``torch_module()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

#: The identity symbol of the library: this prefix, then the sha256 of its sources.
IDENTITY_SYMBOL = "optinv_torch_ops_identity"
MARKER = "optinv-torch-ops-sha256:"
CXX_FLAGS = ["-O2", "-std=c++17", "-fPIC", "-shared"]

#: namespace -> the library path loaded into this process (a namespace is registered once per process).
_LOADED: dict[str, Path] = {}


def cxx_compiler() -> str | None:
    """The C++ compiler: ``$CXX``, else c++, g++ or clang++ on the PATH."""
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


def torch_build_flags() -> tuple[list[str], list[str]]:
    """Compile and link flags for the PyTorch this process runs (the library must match its ABI)."""
    root = Path(torch.__file__).resolve().parent
    include, lib = root / "include", root / "lib"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return ([f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-isystem", str(include), "-isystem",
             str(include / "torch" / "csrc" / "api" / "include")],
            [f"-L{lib}", f"-Wl,-rpath,{lib}", "-lc10", "-ltorch_cpu", "-ltorch"])


def source_identity(cpp: Path, kernels_c: Path) -> str:
    """The sha256 of both sources the library is built from."""
    return hashlib.sha256(cpp.read_bytes() + b"\0" + kernels_c.read_bytes()).hexdigest()


def carries_identity(lib: Path, identity: str) -> bool:
    """The library's bytes contain the marker of ``identity`` (checked before loading it)."""
    try:
        return (MARKER + identity).encode() in lib.read_bytes()
    except OSError:
        return False


class TorchOps:
    """The ``torch_ops.cpp`` library of one generated module: built in the cache, checked, loaded once."""

    def __init__(self, native, package_dir: Path, namespace: str):
        self.native = native  # the package's runtime module (cache rules, C compiler, KernelBuildError)
        self.cpp = Path(package_dir) / "torch_ops.cpp"
        self.kernels_c = Path(package_dir) / "kernels.c"
        self.namespace = namespace

    def library_path(self) -> tuple[Path, list[str], tuple[list[str], list[str]], str, str]:
        """Where the library lives in the cache: keyed by both sources, both compilers, flags, torch and CPU."""
        native = self.native
        cc, cxx = native.compiler(), cxx_compiler()
        if cxx is None:
            raise native.KernelBuildError("no C++ compiler for the torch_cpp operators: install g++ or clang++, or "
                                          "set CXX to a working C++ compiler")
        cflags = [f for f in native.compiler_flags(cc) if f != "-shared"]
        compile_flags, link_flags = torch_build_flags()
        cxxflags = CXX_FLAGS + (["-fopenmp"] if "-fopenmp" in cflags else []) + compile_flags
        key = hashlib.sha256("\0".join([
            source_identity(self.cpp, self.kernels_c), cc, native.compiler_version(cc), " ".join(cflags), cxx,
            native.compiler_version(cxx), " ".join(cxxflags + link_flags), torch.__version__, native._cpu_fingerprint(),
        ]).encode()).hexdigest()[:24]
        lib = native.cache_root() / f"{self.cpp.parent.name}-torch-ops-{key}" / "torch_ops.so"
        return lib, cflags, (cxxflags, link_flags), cc, cxx

    def build(self, force: bool = False, verbose: bool = False) -> Path:
        """Compile into the cache (if needed) and return the library's path; checked before anything loads it."""
        native = self.native
        lib, cflags, cxxflags, cc, cxx = self.library_path()
        stamp = lib.with_suffix(".sha256")
        identity = source_identity(self.cpp, self.kernels_c)
        native.private_dir(native.cache_root())
        entry = native.private_dir(lib.parent)

        def usable() -> bool:
            return native._cached(lib, stamp) and carries_identity(lib, identity)

        if not force and usable():
            native.check_private(lib, directory=False)
            return lib
        with native.build_lock(entry):
            if force or not usable():  # else another thread or process built it while we waited
                self._clear_the_way(entry, lib, stamp)
                self._compile(lib, stamp, identity, cflags, cxxflags, cc, cxx, verbose)
        if not usable():
            raise native.KernelBuildError(f"{lib}: the freshly built library does not carry the sha256 of its sources")
        native.check_private(lib, directory=False)
        return lib

    def _clear_the_way(self, entry: Path, lib: Path, stamp: Path) -> None:
        """Under the build lock: stale temporary files and whatever is where the library and stamp go."""
        self.native._clear_the_way(entry, lib, stamp, temporaries=("torch-ops-*.tmp",))

    def _compile(self, lib: Path, stamp: Path, identity: str, cflags, cxxflags, cc: str, cxx: str,
                 verbose: bool) -> None:
        native = self.native
        entry = lib.parent
        made = []

        def temp(suffix: str) -> Path:
            fd, name = tempfile.mkstemp(prefix="torch-ops-", suffix=suffix + ".tmp", dir=entry)
            os.close(fd)
            made.append(Path(name))
            return made[-1]

        cxxflags, link_flags = cxxflags
        obj, ident, so = temp(".o"), temp(".cpp"), temp(".so")
        # the identity: a separate translation unit, so torch_ops.cpp stays as generated
        ident.write_text(f'extern "C" const char {IDENTITY_SYMBOL}[] = "{MARKER}{identity}";\n')
        steps = [
            [cc, *cflags, "-c", str(self.kernels_c), "-o", str(obj)],
            [cxx, *cxxflags, str(self.cpp), "-x", "c++", str(ident), "-x", "none", str(obj), "-o", str(so),
             *link_flags],
        ]
        try:
            for cmd in steps:
                if verbose:
                    print(" ".join(cmd), file=sys.stderr)
                try:
                    res = subprocess.run(cmd, capture_output=True, text=True)
                except OSError as exc:
                    raise native.KernelBuildError(f"compiler {cmd[0]!r} cannot run ({exc.strerror}): install gcc/g++ "
                                                  f"or clang/clang++, or set CC and CXX") from None
                if res.returncode != 0:
                    last = next((ln.strip() for ln in reversed(res.stderr.splitlines()) if ln.strip()), "no output")
                    raise native.KernelBuildError(
                        f"{cmd[0]!r} failed building the torch_cpp operators of {self.cpp.parent.name} "
                        f"(exit {res.returncode}: {last[:200]})", details=res.stderr[-4000:])
            digest = native._sha256(so)
            os.chmod(so, 0o700)
            os.replace(so, lib)  # atomic: readers see the old file or the new one, never half of one
            fd, tmp_stamp = tempfile.mkstemp(prefix="stamp-", dir=entry)
            with os.fdopen(fd, "w") as f:
                f.write(digest + "\n")
            os.replace(tmp_stamp, stamp)
        finally:
            for t in made:
                with contextlib.suppress(OSError):
                    t.unlink()

    def load(self, force: bool = False, verbose: bool = False) -> Path:
        """Build if needed, check, and load the library into this process (once); returns its path."""
        if self.namespace in _LOADED:
            return _LOADED[self.namespace]
        if _registered(self.namespace):
            raise RuntimeError(f"torch.ops.{self.namespace} is already registered in this process by a library "
                               f"optinv did not load and check; load the package's operators before any other copy")
        lib = self.build(force=force, verbose=verbose)
        torch.ops.load_library(str(lib))
        # the same file through the handle just opened: its identity symbol must match the sources
        found = (ctypes.c_char * (len(MARKER) + 64)).in_dll(ctypes.CDLL(str(lib)), IDENTITY_SYMBOL).value.decode()
        expected = MARKER + source_identity(self.cpp, self.kernels_c)
        if found != expected:
            raise self.native.KernelBuildError(f"{lib}: the loaded library carries {found!r}, not {expected!r}; "
                                               "delete that cache entry (or set OPTINV_CACHE_DIR elsewhere)")
        _LOADED[self.namespace] = lib
        return lib

    def ops(self):
        """``torch.ops.<namespace>`` with the operators loaded."""
        self.load()
        return getattr(torch.ops, self.namespace)


def _registered(namespace: str) -> bool:
    """Whether some library already registered ``namespace::forward`` in this process."""
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"{namespace}::forward", "CompositeExplicitAutograd")
    except RuntimeError:
        return False
