"""Property 5 of ``optinv verify``, checked first: the package is exactly what optinv generates for its request.

Nothing here executes anything from the package.  The reference for what the
package should be is not a hash stored beside the files (whoever edits a file
can edit its hash too) but the installed optinv itself: the recorded request
is rendered again (:func:`~optinv.codegen.render.render_module` is pure) and
every file is compared byte for byte.  Files that optinv does not generate
(an extra ``.py`` or ``.pth``, say) are reported; symbolic links are refused;
``__pycache__`` folders are listed as ignored, because verify imports the
regenerated files from a fresh private copy (:func:`verified_copy`), never
the package's own files or bytecode.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from optinv.algebra.errors import OptinvError
from optinv.codegen.plan import make_plan
from optinv.codegen.render import check_package_name, render_module
from optinv.codegen.request import Request
from optinv.version import __version__


#: Folders Python writes next to sources; verify never reads them (it imports from its own copy).
IGNORED_DIRS = ("__pycache__",)
#: metadata.json fields verify reads before it trusts anything, with their JSON types.
REQUIRED_FIELDS = {"name": str, "request": dict, "signature": dict, "invariants": list, "D": int, "K": int}


def read_metadata(where: Path) -> dict:
    """``metadata.json`` parsed and type-checked; any defect is one :class:`OptinvError` line."""
    path = where / "metadata.json"
    where_text = f"{path}"
    try:
        if path.is_symlink():
            raise OptinvError(f"PATH: {where_text} is a symbolic link; verify refuses links inside a package")
        raw = path.read_bytes()
    except OSError as exc:
        raise OptinvError(f"PATH: cannot read {where_text}: {exc.strerror or exc}") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise OptinvError(f"PATH: {where_text} is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise OptinvError(f"PATH: {where_text} is not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise OptinvError(f"PATH: {where_text} must hold a JSON object, got a {type(meta).__name__}")
    for key, kind in REQUIRED_FIELDS.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = "nothing" if key not in meta else f"a {type(value).__name__}"
            raise OptinvError(f"PATH: {where_text}: {key!r} must be a JSON {kind.__name__}, got {got}")
    if not all(isinstance(e, str) for e in meta["invariants"]):
        raise OptinvError(f"PATH: {where_text}: 'invariants' must be a list of einsum strings")
    try:
        check_package_name(meta["name"])
    except OptinvError as exc:
        raise OptinvError(f"PATH: {where_text}: {exc}") from None
    return meta


def regenerate(meta: dict) -> dict[str, bytes]:
    """The files the installed optinv writes for the recorded request and name (in memory)."""
    request = Request.from_dict(meta["request"])
    files = render_module(make_plan(request), meta["name"])
    return {name: text.encode() for name, text in files.items()}


@dataclass
class Integrity:
    """The verdict: ``ok``, a one-line ``message``, and the verified files (only when ``ok``)."""

    ok: bool
    message: str
    files: dict[str, bytes] = field(default_factory=dict)


def package_entries(where: Path) -> tuple[dict[str, Path], list[str], list[str]]:
    """``(files, links, ignored)`` under ``where``: regular files by relative path, symbolic links, ignored dirs.

    Uses ``lstat`` throughout: links are reported, never followed.
    """
    files, links, ignored, odd = {}, [], [], []
    for root, dirs, names in os.walk(where, followlinks=False):
        base = Path(root)
        for d in list(dirs):
            rel = (base / d).relative_to(where).as_posix()
            if (base / d).is_symlink():
                links.append(rel)
                dirs.remove(d)
            elif d in IGNORED_DIRS:
                ignored.append(rel)
                dirs.remove(d)
        for n in names:
            p = base / n
            rel = p.relative_to(where).as_posix()
            mode = p.lstat().st_mode
            if stat.S_ISLNK(mode):
                links.append(rel)
            elif stat.S_ISREG(mode):
                files[rel] = p
            else:
                odd.append(rel)
    links += odd  # fifos, sockets, devices: no generated file is one
    return files, sorted(links), sorted(ignored)


def check_integrity(where: Path, meta: dict) -> Integrity:
    """Compare every file under ``where`` with the regeneration of its recorded request; run nothing from it."""
    problems = []
    try:
        expected = regenerate(meta)
    except Exception as exc:  # noqa: BLE001 - any failure to regenerate is an integrity failure, in one line
        text = str(exc).splitlines()[0] if str(exc) else ""
        return Integrity(False, f"regenerating from the recorded request failed: {type(exc).__name__}: {text}")
    files, links, ignored = package_entries(where)
    if links:
        problems.append("symbolic links or special files refused: " + ", ".join(links))
    for fname in sorted(expected):
        if fname in links:
            continue
        if fname not in files:
            problems.append(f"{fname} is missing")
            continue
        mine = files[fname].read_bytes()
        if mine != expected[fname]:
            problems.append(f"{fname} differs from the regenerated file ({first_difference(mine, expected[fname])})")
    unknown = sorted(set(files) - set(expected))
    if unknown:
        problems.append("files optinv does not generate: " + ", ".join(unknown))
    if problems:
        recorded = meta.get("optinv_version")
        if recorded != __version__:
            problems.append(f"it records optinv {recorded!r} but this is optinv {__version__}: regenerate it with "
                            f"`optinv compile` (or verify it with the optinv that wrote it)")
        return Integrity(False, "; ".join(problems))
    note = f"; ignored (never imported): {', '.join(ignored)}" if ignored else ""
    return Integrity(True, f"{len(expected)} files byte-identical to the regeneration of the recorded request "
                           f"by the installed optinv; no other files{note}", expected)


def first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y:
            return f"line {i}: {x.strip()[:60]!r} vs regenerated {y.strip()[:60]!r}"
    return f"{len(la)} lines vs {len(lb)} regenerated"


@contextlib.contextmanager
def verified_copy(files: dict[str, bytes], name: str):
    """A private directory ``<tmp>/<name>`` holding ``files`` (the verified bytes), removed afterwards.

    The folder keeps the package's name, so the C library's cache key (source
    and folder name) is the one the package itself would use.
    """
    with tempfile.TemporaryDirectory(prefix="optinv-verify-") as tmp:
        os.chmod(tmp, 0o700)
        copy = Path(tmp) / name
        copy.mkdir(mode=0o700)
        for fname, data in files.items():
            (copy / fname).write_bytes(data)
        yield copy
