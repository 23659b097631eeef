"""Runtime of a generated optinv module: input checks, building and loading the kernels.

Modules committed inside optinv import this module; ``optinv compile`` copies it
verbatim into the package it writes (as ``_runtime.py``) so that package is
self-contained: it needs only NumPy and a C compiler (CuPy for the CUDA kernels,
PyTorch for the autograd adapter).  So it imports nothing from optinv.

The C library is compiled on first use into a per-user cache
(``$OPTINV_CACHE_DIR``, else ``$XDG_CACHE_HOME/optinv``, else ``~/.cache/optinv``),
keyed by a hash of the source, the compiler, its flags and this CPU.  Anyone
who can write there can have code loaded, so: directories are created 0700
and refused (:class:`CacheSecurityError`, naming the path and the fix) unless
owned by this user and writable by nobody else; ``$XDG_CACHE_HOME`` and
``$OPTINV_CACHE_DIR`` that are empty or relative are ignored, ``~`` is
expanded.  One thread or process compiles an entry while the others wait on
its lock (``flock``); builds go to a private temporary file moved into place
atomically; stale temporary files and anything in the way (a directory where
the library goes) are removed under the lock.  Every library carries the
sha256 of the exact source it was built from (``optinv_source_sha256``),
checked after loading and before any kernel runs: a corrupt, planted or
foreign library is rebuilt, never used.


Input arrays must be float32 or float64 of shape ``(n, width)``.  Arrays that
are not C-contiguous are copied (documented behaviour, never an error);
``out=`` buffers are written in place and must be C-contiguous with the exact
shape and dtype, because copying them would silently drop the result.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: threads still build once; processes rely on the atomic rename
    fcntl = None

import numpy as np

SUPPORTED_DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
BASE_FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-ffp-contract=fast"]


class KernelBuildError(RuntimeError):
    """The C compiler is missing or could not build the kernels (one-line message; ``details``: its output)."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


class CacheSecurityError(RuntimeError):
    """A cache directory or library that another user could have written: refused, never loaded."""


#: The most threads a kernel call may ask for (libgomp aborts or crashes far above this).
MAX_THREADS = 1024


def check_threads(threads) -> int:
    """A thread count: a Python or NumPy integer in ``0..MAX_THREADS`` (0: OpenMP decides); else ValueError."""
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
        raise ValueError(f"threads: expected an integer in 0..{MAX_THREADS} (0: all cores), got {threads!r}")
    value = int(threads)
    if not 0 <= value <= MAX_THREADS:
        raise ValueError(f"threads: expected an integer in 0..{MAX_THREADS} (0: all cores), got {value}")
    return value


def _absolute_dir(value: str | None) -> Path | None:
    """An environment variable's directory: ``~`` expanded; empty or relative values ignored (XDG rules)."""
    if not value:
        return None
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else None


def cache_root() -> Path:
    """``$OPTINV_CACHE_DIR``, else ``$XDG_CACHE_HOME/optinv``, else ``~/.cache/optinv`` (empty or relative ignored)."""
    explicit = _absolute_dir(os.environ.get("OPTINV_CACHE_DIR"))
    if explicit is not None:
        return explicit
    xdg = _absolute_dir(os.environ.get("XDG_CACHE_HOME"))
    return (xdg if xdg is not None else Path(os.path.expanduser("~")) / ".cache") / "optinv"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) with mode 0700; refuse it unless it is ours and not group/world-writable.

    Anyone who can write a cache directory can have their library loaded, so
    the check is made on every use, as pip and ccache do for theirs.
    """
    missing = []
    p = Path(path)
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    check_private(path, directory=True)
    return path


def check_private(path: Path, directory: bool) -> None:
    """Refuse ``path`` unless it is owned by this user and writable by nobody else."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CacheSecurityError(f"{path}: cannot be used as the optinv cache ({exc.strerror})") from None
    kind_ok = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    what = "directory" if directory else "file"
    if not kind_ok:
        raise CacheSecurityError(f"{path}: expected a {what} in the optinv cache")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CacheSecurityError(
            f"{path}: the optinv cache {what} is owned by another user (uid {st.st_uid}), so its libraries could be "
            f"anyone's; fix: set OPTINV_CACHE_DIR to a directory of your own")
    if st.st_mode & 0o022:
        raise CacheSecurityError(
            f"{path}: the optinv cache {what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"fix: chmod go-w {path} (or set OPTINV_CACHE_DIR to a private directory)")


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
    flags.append(f"-DOPTINV_STREAM_BYTES={stream_threshold_bytes()}")
    return flags


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache of cpu0 from sysfs (Linux), or None."""
    sizes = []
    for size in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = size.read_text().strip().upper()
            sizes.append(int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[text[-1]] if text[-1] in "KMG"
                         else int(text))
        except (OSError, ValueError, IndexError):
            continue
    return max(sizes) if sizes else None


def stream_threshold_bytes() -> int:
    """Output bytes from which the kernels stream their stores: 1.25x the last-level cache, at least 40 MiB.

    Streaming leaves the output out of the cache for its reader; measured on a 32 MiB cache it paid
    from about 40 MiB of output, so a larger cache moves the threshold up with it.
    """
    llc = last_level_cache_bytes() or 0
    return max(40 << 20, llc * 5 // 4)


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


#: The symbol every library carries: the sha256 of the exact C source it was built from (checked after loading).
IDENTITY_SYMBOL = "optinv_source_sha256"


def source_identity(source: Path) -> str:
    return _sha256(source)


@dataclass(frozen=True)
class Toolchain:
    """How a library is built from one source file: the C kernels (:func:`c_toolchain`) or another language.

    ``language`` is that of the identity unit (``c`` or ``c++``); ``entry``
    names the cache entry (default: the source's directory, so each package has
    its own); ``library`` is the file name in it; ``what``, ``env`` and
    ``install`` are for error messages (``C compiler``, ``CC``, ``gcc or clang``).
    """

    cc: str
    flags: tuple[str, ...]
    language: str = "c"
    libs: tuple[str, ...] = ("-lm",)
    entry: str | None = None
    library: str = "kernels.so"
    what: str = "C compiler"
    env: str = "CC"
    install: str = "gcc or clang"


def c_toolchain() -> Toolchain:
    """The C kernels' toolchain: :func:`compiler` with :func:`compiler_flags`."""
    cc = compiler()
    return Toolchain(cc, tuple(compiler_flags(cc)))


def library_path(source: Path, toolchain: Toolchain | None = None) -> tuple[Path, list[str], str]:
    """Where the library for this source, compiler and CPU lives in the cache."""
    tc = c_toolchain() if toolchain is None else toolchain
    key = hashlib.sha256(
        "\0".join([source.read_text(), tc.cc, compiler_version(tc.cc), " ".join(tc.flags), _cpu_fingerprint()]).encode()
    ).hexdigest()[:24]
    return cache_root() / f"{tc.entry or source.parent.name}-{key}" / tc.library, list(tc.flags), tc.cc


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def build_lock(entry: Path):
    """One build per cache entry at a time, across threads (a lock) and processes (``flock`` on a lock file)."""
    with _THREAD_LOCKS_GUARD:
        tlock = _THREAD_LOCKS.setdefault(str(entry), threading.Lock())
    with tlock:
        lock_path = entry / "build.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def _cached(lib: Path, stamp: Path) -> bool:
    """A library in place, with a stamp matching its bytes (a torn or corrupt file is not)."""
    if not (lib.is_file() and not lib.is_symlink() and stamp.is_file() and not stamp.is_symlink()):
        return False
    try:
        return stamp.read_text().strip() == _sha256(lib)
    except OSError:
        return False


def _clear_the_way(entry: Path, lib: Path, stamp: Path,
                   temporaries: tuple[str, ...] = ("kernels-*.so.tmp", "kernels-*.c.tmp")) -> None:
    """Under the build lock: remove stale temporary files and anything (a directory, a link) where files go."""
    for stale in [*(path for pattern in temporaries for path in entry.glob(pattern)), *entry.glob("stamp-*")]:
        with contextlib.suppress(OSError):
            stale.unlink()
    for path in (lib, stamp):
        if path.is_symlink() or (path.exists() and not path.is_file()):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def build(source: Path, force: bool = False, verbose: bool = False, toolchain: Toolchain | None = None) -> Path:
    """Compile ``source`` into the cache (if needed) and return the library's path.

    One process and thread compiles; others wait on the entry's lock and then
    use its result.  The library carries ``optinv_source_sha256`` (the sha256
    of ``source``), which :func:`load_verified` checks after loading.
    ``toolchain``: how to build it (default :func:`c_toolchain`).
    """
    toolchain = c_toolchain() if toolchain is None else toolchain
    lib, flags, cc = library_path(source, toolchain)
    stamp = lib.with_suffix(".sha256")
    root = private_dir(cache_root())
    entry = private_dir(lib.parent)
    del root
    if not force and _cached(lib, stamp):
        check_private(lib, directory=False)
        return lib
    with build_lock(entry):
        if not force and _cached(lib, stamp):  # another thread or process built it while we waited
            check_private(lib, directory=False)
            return lib
        _clear_the_way(entry, lib, stamp)
        _compile(source, lib, stamp, toolchain, verbose)
    return lib


def _compile(source: Path, lib: Path, stamp: Path, toolchain: Toolchain, verbose: bool) -> None:
    entry, cc, what = lib.parent, toolchain.cc, toolchain.what
    linkage = 'extern "C" ' if toolchain.language == "c++" else ""  # C++ gives a const global internal linkage
    fd, tmp_name = tempfile.mkstemp(prefix="kernels-", suffix=".so.tmp", dir=entry)
    os.close(fd)
    tmp = Path(tmp_name)
    fd, ident_name = tempfile.mkstemp(prefix="kernels-", suffix=".c.tmp", dir=entry)
    with os.fdopen(fd, "w") as f:  # the identity: a second translation unit, so kernels.c stays as generated
        f.write(f'{linkage}const char {IDENTITY_SYMBOL}[] = "{source_identity(source)}";\n')
    ident = Path(ident_name)
    cmd = [cc, *toolchain.flags, str(source), "-x", toolchain.language, str(ident), "-o", str(tmp), *toolchain.libs]
    if verbose:
        print(" ".join(cmd), file=sys.stderr)
    try:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise KernelBuildError(f"{what} {cc!r} not found: install one ({toolchain.install}) or set "
                                   f"{toolchain.env} to a working {what}") from None
        except OSError as exc:
            raise KernelBuildError(f"{what} {cc!r} cannot run ({exc.strerror}): set {toolchain.env} to a working "
                                   f"{what}") from None
        if res.returncode != 0:
            last = next((ln.strip() for ln in reversed(res.stderr.splitlines()) if ln.strip()), "no output")
            raise KernelBuildError(f"{what} {cc!r} failed on {source} (exit {res.returncode}: {last[:200]}); "
                                   f"fix: install {toolchain.install}, or set {toolchain.env} to a working {what}",
                                   details=res.stderr[-4000:])
        digest = _sha256(tmp)
        os.chmod(tmp, 0o700)
        os.replace(tmp, lib)  # atomic: readers see the old file or the new one, never half of one
        fd, tmp_stamp = tempfile.mkstemp(prefix="stamp-", dir=entry)
        with os.fdopen(fd, "w") as f:
            f.write(digest + "\n")
        os.replace(tmp_stamp, stamp)
    finally:
        for t in (tmp, ident):
            if t.exists():
                t.unlink()


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


#: Outputs from this size are 64-byte aligned (smaller ones never reach a kernel's streaming threshold).
ALIGN_MIN_BYTES = 1 << 20
#: Outputs from this size are carved from reused memory (see :class:`_PooledMemory`).
POOL_MIN_BYTES = 4 << 20
def _pool_bytes_from_env(default: int = 512 << 20) -> int:
    """``OPTINV_POOL_BYTES`` as bytes (an integer, or with a K/M/G suffix); 0 or less: no pool."""
    text = os.environ.get("OPTINV_POOL_BYTES", "").strip()
    if not text:
        return default
    try:
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1].upper(), 1)
        value = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        import warnings

        warnings.warn(f"OPTINV_POOL_BYTES={text!r} is not a byte count (e.g. 536870912 or 512M); "
                      f"using the default {default >> 20} MiB", RuntimeWarning, stacklevel=2)
        return default
    return max(value, 0)


#: At most this many bytes of released output memory are kept for reuse (``OPTINV_POOL_BYTES``; 0: none).
POOL_MAX_BYTES = _pool_bytes_from_env()
_HUGE_PAGE = 2 << 20
_CAN_POOL = hasattr(__import__("mmap"), "MAP_PRIVATE")  # POSIX: private anonymous mappings
# The pool keeps released mappings, least recently released first, within POOL_MAX_BYTES: a new one
# pushes out the oldest.  __del__ (which may run inside any allocation, even one made while the lock
# is held by the same thread) never waits for the lock: when it cannot take it, it queues the mapping
# in _RETURNED (deque operations are atomic), within the same cap, for the next allocation to move in.
_RETURNED: collections.deque = collections.deque()
_RETURNED_BYTES = [0]  # bytes in _RETURNED
_POOL: list = []  # (size, mapping), least recently released first
_POOL_HELD = [0]  # bytes in _POOL
_POOL_LOCK = threading.Lock()


def _fresh_lock_in_child() -> None:
    global _POOL_LOCK
    _POOL_LOCK = threading.Lock()  # a fork taken while another thread held it would deadlock the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock_in_child)


def release_output_pool() -> int:
    """Unmap every idle pooled output buffer now; returns the bytes released (live outputs are untouched)."""
    with _POOL_LOCK:
        released = _POOL_HELD[0] + _RETURNED_BYTES[0]
        _RETURNED.clear()
        _RETURNED_BYTES[0] = 0
        _POOL.clear()
        _POOL_HELD[0] = 0
    return released


def _settle() -> None:
    """Move queued mappings into the pool and drop the oldest beyond the cap (caller holds the lock)."""
    while _RETURNED:
        entry = _RETURNED.popleft()
        _RETURNED_BYTES[0] -= entry[0]
        _POOL.append(entry)
        _POOL_HELD[0] += entry[0]
    while _POOL and _POOL_HELD[0] > POOL_MAX_BYTES:
        dropped, _ = _POOL.pop(0)  # unmapped when the last reference goes
        _POOL_HELD[0] -= dropped


def _pooled_mapping(size: int):
    """A released mapping of exactly ``size`` bytes (the most recent), or None."""
    with _POOL_LOCK:
        _settle()
        for k in range(len(_POOL) - 1, -1, -1):
            if _POOL[k][0] == size:
                _POOL_HELD[0] -= size
                return _POOL.pop(k)[1]
    return None


def _release(size: int, mapping) -> None:
    """Take a mapping back from a dead output (called from ``__del__``: never blocks)."""
    if size > POOL_MAX_BYTES:
        return
    if _POOL_LOCK.acquire(blocking=False):
        try:
            _RETURNED.append((size, mapping))
            _RETURNED_BYTES[0] += size
            _settle()
        finally:
            _POOL_LOCK.release()
        return
    while _RETURNED and _POOL_HELD[0] + _RETURNED_BYTES[0] + size > POOL_MAX_BYTES:
        try:
            dropped, _ = _RETURNED.popleft()  # the oldest queued one makes room
        except IndexError:
            break
        _RETURNED_BYTES[0] -= dropped
    if _POOL_HELD[0] + _RETURNED_BYTES[0] + size <= POOL_MAX_BYTES:
        _RETURNED_BYTES[0] += size
        _RETURNED.append((size, mapping))


class _PooledMemory:
    """Anonymous memory behind one large output array; back to the pool when the last view of it dies.

    A fresh large array costs the kernel's zeroing of every new page on first touch (for a
    104 MB output, more than half the kernel's own time at 1 thread); memory that already
    served an output has its pages in place.  Like ``np.empty``, the array's contents are
    whatever the memory held before (an earlier output of this process).
    """

    def __init__(self, size: int):
        import mmap

        self.size = size
        self.mapping = _pooled_mapping(size)
        if self.mapping is None:
            # private (mmap's default, shared anonymous memory, is shmem: no huge pages, 1.3x slower writes)
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
            try:
                self.mapping = mmap.mmap(-1, size, flags=flags)
            except OSError:  # out of address space or memory: give back the idle pool and try once more
                release_output_pool()
                self.mapping = mmap.mmap(-1, size, flags=flags)
            if hasattr(self.mapping, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
                with contextlib.suppress(OSError):  # kernels without transparent huge pages refuse the advice
                    self.mapping.madvise(mmap.MADV_HUGEPAGE)

    def __del__(self):
        try:
            mapping, self.mapping = getattr(self, "mapping", None), None
            if mapping is not None:
                _release(self.size, mapping)
        except (TypeError, AttributeError, NameError):  # interpreter shutdown: module globals already gone
            pass


def aligned_empty(n: int, width: int, dtype) -> np.ndarray:
    """An uninitialised C-contiguous (n, width) array whose data starts on a 64-byte boundary.

    NumPy aligns large arrays to 16 bytes only; the kernels write a large output with streaming
    stores, which need whole aligned cache lines, so outputs from :data:`ALIGN_MIN_BYTES` are
    aligned (a view into a slightly larger buffer; smaller ones are plain ``np.empty``).  From :data:`POOL_MIN_BYTES` the memory is reused across
    calls (:class:`_PooledMemory`), so repeated large calls do not pay for fresh pages.
    """
    dtype = np.dtype(dtype)
    nbytes = n * width * dtype.itemsize
    if nbytes < ALIGN_MIN_BYTES:  # far below any streaming threshold: plain np.empty (the view costs 1.7 us)
        return np.empty((n, width), dtype=dtype)
    if nbytes >= POOL_MIN_BYTES and POOL_MAX_BYTES > 0 and _CAN_POOL:
        memory = _PooledMemory(-(-nbytes // _HUGE_PAGE) * _HUGE_PAGE)
        flat = np.frombuffer(memory.mapping, dtype=np.uint8, count=nbytes)
        # keep `memory` (not only its mapping) alive for as long as any view of the array lives
        holder = _Holder(flat, memory)
        return np.asarray(holder).view(dtype).reshape(n, width)
    raw = np.empty(nbytes + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(n, width)


class _Holder:
    """Exposes a byte array through the array interface while owning the memory behind it."""

    def __init__(self, flat: np.ndarray, memory: _PooledMemory):
        self.__array_interface__ = flat.__array_interface__
        self._flat, self._memory = flat, memory


def check_out(out, n: int, width: int, dtype) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    if out.shape != (n, width) or out.dtype != dtype:
        raise ValueError(f"out: expected shape ({n}, {width}) and dtype {dtype}, got {out.shape} and {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a writeable C-contiguous array")
    return out


def load_library(path: Path, fresh: bool = False) -> ctypes.CDLL | None:
    """dlopen ``path`` (``fresh``: by another spelling, so a handle already open under that name is not reused)."""
    name = os.path.join(str(path.parent), ".", path.name) if fresh else str(path)
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def library_identity(lib: ctypes.CDLL) -> str | None:
    """The sha256 of the source a loaded library says it was built from (None: it carries none)."""
    try:
        return (ctypes.c_char * 64).in_dll(lib, IDENTITY_SYMBOL).value.decode("ascii", "replace")
    except (ValueError, AttributeError):
        return None


def load_verified(source: Path, toolchain: Toolchain | None = None) -> ctypes.CDLL:
    """Build (if needed) and load the library of ``source``, refusing any whose identity is not this source's.

    A corrupt, planted or foreign library in the cache is rebuilt once and
    checked again; a second failure is a :class:`KernelBuildError`.  Nothing
    of the library runs before the check but what ``dlopen`` itself runs.
    """
    expected = source_identity(source)
    lib = load_library(build(source, toolchain=toolchain))
    if lib is None or library_identity(lib) != expected:
        lib = load_library(build(source, force=True, toolchain=toolchain), fresh=True)
        if lib is None or library_identity(lib) != expected:
            raise KernelBuildError(
                f"{library_path(source, toolchain)[0]}: the library does not carry the sha256 of {source} "
                f"even after a rebuild; fix: delete that cache entry (or set OPTINV_CACHE_DIR elsewhere)")
    return lib


class CKernels:
    """The compiled C library of one generated module, loaded lazily with ctypes."""

    def __init__(self, package_dir: Path, kernels: dict[str, dict]):
        self.source = Path(package_dir) / "kernels.c"
        self.kernels = kernels  # name -> {"args": [(name, width)], "width": int}
        self._lib = None
        self._threads = 0  # 0: OpenMP decides (OMP_NUM_THREADS or all cores)

    @property
    def threads(self) -> int:
        return self._threads

    @threads.setter
    def threads(self, value) -> None:
        self._threads = check_threads(value)

    def _load(self, path: Path, fresh: bool = False) -> ctypes.CDLL | None:
        return load_library(path, fresh)

    def _identity(self, lib: ctypes.CDLL) -> str | None:
        return library_identity(lib)

    def library(self) -> ctypes.CDLL:
        if self._lib is None:
            lib = load_verified(self.source)
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
        threads = self._threads if threads is None else check_threads(threads)
        spec = self.kernels[name]
        (xname, xwidth), *rest = spec["args"]
        x = check_array(xname, arrays[0], xwidth)
        n = x.shape[0]
        others = [check_array(a, arr, w, dtype=x.dtype, n=n) for (a, w), arr in zip(rest, arrays[1:])]
        out = aligned_empty(n, spec["width"], x.dtype) if out is None else check_out(out, n, spec["width"], x.dtype)
        if any(np.shares_memory(out, a) for a in (x, *others)):
            raise ValueError("out: must not overlap the inputs (the kernels read inputs while writing out)")
        if n == 0:
            return out
        suffix = SUPPORTED_DTYPES[x.dtype]
        fn = getattr(self.library(), f"optinv_{name}_{suffix}")
        ptr = ctypes.POINTER(ctypes.c_float if suffix == "f32" else ctypes.c_double)
        args = [a.ctypes.data_as(ptr) for a in (x, *others)]
        fn(*args, out.ctypes.data_as(ptr), n, threads)

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
