"""The examples in module docstrings run and give what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "optinv.algebra.signature",
    "optinv.algebra.cartesian",
    "optinv.algebra.graphs",
    "optinv.algebra.enumerate",
    "optinv.algebra.evaluate",
    "optinv.algebra.rank",
    "optinv.algebra.select",
    "optinv.algebra.basis",
    "optinv.algebra.molien",
    "optinv.algebra.ace",
    "optinv.codegen.program",
    "optinv.codegen.plan",
    "optinv.codegen.printer",
    "optinv.codegen.build",
    "optinv.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
