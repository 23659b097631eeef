"""Compile a C source to a shared library in a per-user cache, keyed by a content hash.

The flags are those the generated kernels use (``-O3 -march=native -fopenmp
-ffp-contract=fast``, no ``-ffast-math``), so that the C peers are compiled as
fairly as the kernels they are compared with.  A build goes to a temporary
file first and is moved into place atomically, so two processes building the
same source at once are safe; a library that fails to load is rebuilt.

>>> lib = build_and_load("int answer(void) { return 42; }", "demo")
>>> lib.answer()
42
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

CC = os.environ.get("CC", "gcc")
# The generated kernel's flags (issue 3/4); kept in one place for every C peer.
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast", "-fPIC", "-shared", "-std=gnu11"]


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
    try:
        out = subprocess.run([CC, "--version"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError) as exc:  # pragma: no cover - no compiler
        return f"unavailable ({exc})"


def build(source: str, name: str, flags: list[str] | None = None) -> Path:
    """Compile ``source`` to ``<cache>/<name>-<hash>.so`` unless it is already there; return the path."""
    flags = list(CFLAGS if flags is None else flags)
    key = hashlib.sha256("\0".join([source, CC, compiler_version(), *flags]).encode()).hexdigest()[:16]
    so = cache_dir() / f"{name}-{key}.so"
    if so.exists():
        return so
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        src = Path(tmp) / f"{name}.c"
        src.write_text(source)
        tmp_so = Path(tmp) / f"{name}.so"
        proc = subprocess.run([CC, *flags, str(src), "-o", str(tmp_so), "-lm"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{CC} failed on {name}.c:\n{proc.stderr[-4000:]}")
        os.replace(tmp_so, so)  # atomic: another process may have put the same bytes there
        shutil.copyfile(src, so.with_suffix(".c"))  # kept next to the library for reading
    return so


def build_and_load(source: str, name: str, flags: list[str] | None = None) -> ctypes.CDLL:
    """Build (or reuse) and load the library; a cached library that fails to load is rebuilt once."""
    so = build(source, name, flags)
    try:
        return ctypes.CDLL(str(so))
    except OSError:
        so.unlink(missing_ok=True)
        return ctypes.CDLL(str(build(source, name, flags)))
