"""Finding a generated module (a directory or a committed module's name) and importing it afresh."""

from __future__ import annotations

import itertools
from pathlib import Path

from optinv.algebra.errors import OptinvError
from optinv.codegen.catalog import committed_modules, generated_dir
from optinv.codegen.package import import_source_only

_LOADS = itertools.count()


def resolve_module_path(path) -> Path:
    """A module directory from a path (directory or its ``metadata.json``) or a committed module's name."""
    if str(path) in committed_modules():  # a bare committed name means the committed module (see shadowing_note)
        return (generated_dir() / str(path)).resolve()
    p = Path(path)
    if p.is_file() and p.name == "metadata.json":
        p = p.parent
    if p.is_dir():
        if not (p / "metadata.json").is_file() or not (p / "__init__.py").is_file():
            raise OptinvError(f"PATH: {str(path)!r} is not a generated optinv module (no metadata.json and __init__.py)")
        return p.resolve()
    names = ", ".join(sorted(committed_modules()))
    raise OptinvError(f"PATH: no generated module at {str(path)!r} (give a directory that `optinv compile` "
                      f"wrote, or a committed module: {names})")


def shadowing_note(path) -> str | None:
    """A note when a bare committed name is also a folder here: which one is checked and how to pick the other."""
    if str(path) in committed_modules() and Path(path).is_dir():
        return (f"note: {path!s} names the committed module {generated_dir() / str(path)}; to check the folder "
                f"{path!s} in this directory instead, give ./{path!s}")
    return None


def load_fresh(
path: Path, name: str):
    """Import the (verified copy of the) package at ``path`` under a fresh name, from its sources only."""
    mod_name = f"optinv_verify_{name}_{next(_LOADS)}"
    try:
        return import_source_only(mod_name, path)
    except Exception as exc:
        raise OptinvError(f"PATH: importing {path} failed: {type(exc).__name__}: {exc}") from None

