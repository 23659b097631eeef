"""Compile a C source to a shared library with the generated kernels' own build (same cache, same flags).

The C peers go through :func:`optinv.codegen.runtime.native.build`, the code
that builds every generated module, so they are compiled exactly as fairly as
the kernels they are compared with (``-O3 -march=native -fopenmp
-ffp-contract=fast``, no ``-ffast-math``) and share its atomic, content-keyed
cache.  The source is written once under :func:`cache_dir`, keyed by its hash.

>>> lib = build_and_load("int answer(void) { return 42; }", "demo")
>>> lib.answer()
42
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from optinv.codegen.runtime import native


def cache_dir() -> Path:
    base = os.environ.get("OPTINV_BENCH_CACHE")
    if base:
        root = Path(base)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "optinv" / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


@lru_cache(maxsize=None)
def compiler_version() -> str:
    return native.compiler_version(native.compiler())


@lru_cache(maxsize=None)
def cflags() -> tuple[str, ...]:
    """The flags the kernels (and so the peers) are built with on this machine."""
    return tuple(native.compiler_flags(native.compiler()))


def source_file(source: str, name: str) -> Path:
    """``<cache>/<name>-<hash>/kernels.c`` holding ``source`` (written atomically once)."""
    folder = cache_dir() / f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    path = folder / "kernels.c"
    if not path.is_file() or path.read_text() != source:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".c.tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


def build(source: str, name: str) -> Path:
    """Compile ``source`` (or reuse the cached library) and return the library's path."""
    return native.build(source_file(source, name))


def build_and_load(source: str, name: str) -> ctypes.CDLL:
    """Build (or reuse) and load the library; a cached library that fails to load is rebuilt once."""
    src = source_file(source, name)
    try:
        return ctypes.CDLL(str(native.build(src)))
    except OSError:
        return ctypes.CDLL(str(native.build(src, force=True)))
