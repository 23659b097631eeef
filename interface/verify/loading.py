"""Finding a generated module (a directory or a committed module's name) and importing it afresh."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

from optinv.algebra.errors import OptinvError
from optinv.codegen.catalog import committed_modules, generated_dir

_LOADS = itertools.count()


def resolve_module_path(path) -> Path:
    """A module directory from a path (directory or its ``metadata.json``) or a committed module's name."""
    p = Path(path)
    if p.is_file() and p.name == "metadata.json":
        p = p.parent
    if p.is_dir():
        if not (p / "metadata.json").is_file() or not (p / "__init__.py").is_file():
            raise OptinvError(f"PATH: {str(path)!r} is not a generated optinv module (no metadata.json and __init__.py)")
        return p.resolve()
    if str(path) in committed_modules():
        return (generated_dir() / str(path)).resolve()
    names = ", ".join(sorted(committed_modules()))
    raise OptinvError(f"PATH: no generated module at {str(path)!r} (give a directory that `optinv compile` "
                      f"wrote, or a committed module: {names})")


def load_fresh(path: Path):
    """Import the package at ``path`` under a fresh name (edited files are never served from a stale import)."""
    meta = json.loads((path / "metadata.json").read_text())
    name = f"optinv_verify_{meta.get('name', 'module')}_{next(_LOADS)}"
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py", submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise OptinvError(f"PATH: importing {path} failed: {type(exc).__name__}: {exc}") from None
    return module
