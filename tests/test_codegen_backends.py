"""Every backend of every committed module (and a few compiled on the fly) against the reference."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optinv.algebra.signature import Signature
from optinv.codegen import compile_module, load_module
from optinv.codegen.catalog import committed_modules
from optinv.testing import rows

from codegen_harness import BACKENDS, check_backend

OPS = ["forward", "vjp", "jvp", "hvp"]
COMMITTED = sorted(committed_modules())


def committed(name: str):
    return importlib.import_module(f"optinv.generated.{name}")


@pytest.fixture(scope="session")
def extra_modules(tmp_path_factory):
    """Signatures the committed set does not cover: pseudoscalars, axial tensors, channels, high rank."""
    out = tmp_path_factory.mktemp("extra")
    mods = {}
    sig = Signature.parse("a:1,b:1,q:2", "SO3")
    mods["so3_pseudo"] = load_module(compile_module(
        ["i,i->,a,a", "i,j,ij->,a,b,q", "i,j,kl,ijk,l->,a,b,q,eps,a"],
        sig, "so3_pseudo", out))
    sig = Signature.parse("w:1:axial,v:1,q:2")
    mods["axial"] = load_module(compile_module(["i,i->,w,w", "i,j,ij->,w,w,q"], sig, "axial", out))
    sig = Signature.channels({0: 2, 1: 2, 2: 2})
    from optinv.algebra.select import select_basis

    mods["channels"] = load_module(compile_module(select_basis(sig, 3), None, "channels", out))
    sig = Signature.parse("s:0,h:6")
    mods["rank6"] = load_module(compile_module(select_basis(sig, 3), None, "rank6", out))
    return mods


def _rows_for(module):
    return rows(Signature.from_dict(module.METADATA["signature"]), max_rows=5)


# torch-cpp compiles each module against PyTorch's headers (20-60 s): test_torch_cpp.py runs it on one module.
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.kind != "torch-cpp"], ids=lambda b: b.name)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("name", COMMITTED)
def test_committed_module_matches_reference(name, op, backend):
    why = backend.unavailable()
    if why:
        pytest.skip(f"backend {backend.name}: {why}")
    module = committed(name)

    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(x=_rows_for(module), seed=st.integers(0, 2**32 - 1))
    def run(x, seed):
        check_backend(module, backend, op, x, np.random.default_rng(seed))

    run()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.kind == "c"], ids=lambda b: b.name)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("which", ["so3_pseudo", "axial", "channels", "rank6"])
def test_compiled_module_matches_reference(extra_modules, which, op, backend):
    module = extra_modules[which]

    @settings(max_examples=15, deadline=None)
    @given(x=_rows_for(module), seed=st.integers(0, 2**32 - 1))
    def run(x, seed):
        check_backend(module, backend, op, x, np.random.default_rng(seed))

    run()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.kind == "c"], ids=lambda b: b.name)
def test_large_batch_crosses_threads_and_tail(backend):
    """Many blocks over several threads, and a tail that is not a multiple of the lane count."""
    module = committed("hop_l3_n4")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10_007, module.D))
    for threads in (1, 2, 3):
        module.set_num_threads(threads)
        check_backend(module, backend, "forward", x, rng)
    module.set_num_threads(0)
