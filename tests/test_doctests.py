"""The examples in docstrings run and give what they say: every module of the package, found automatically."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest

# generated/ holds generated code (its examples are checked by the module tests); the torch adapter needs torch.
SKIP = ("optinv.generated", "optinv.__main__")


def package_modules() -> list[str]:
    """Every module of every package pyproject.toml installs (folders map onto ``optinv.*``)."""
    config = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    names = set()
    for package in config["tool"]["setuptools"]["packages"]:
        if package.startswith(SKIP):
            continue
        names.add(package)
        path = importlib.import_module(package).__path__
        names.update(info.name for info in pkgutil.iter_modules(path, prefix=package + ".") if not info.ispkg)
    return sorted(n for n in names if not n.startswith(SKIP))


def test_modules_are_found():
    names = package_modules()
    for expected in ("optinv.algebra.select", "optinv.codegen.targets", "optinv.verify.stencils", "optinv.testing"):
        assert expected in names


@pytest.mark.parametrize("name", package_modules())
def test_docstring_examples(name):
    if name.endswith("torch_adapter"):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
