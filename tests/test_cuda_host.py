"""The CUDA kernels run on the CPU through the host shim, and the shim catches the bugs it is there for.

The harness (test_codegen_backends.py, kind ``cuda-host``) runs every committed
module's ``kernels.cu`` against the engine.  Here: a kernel whose bound check
is off by one writes past the last row and a kernel with a wrong row stride
computes wrong values; both are caught without a GPU.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest

from optinv.codegen.targets.cuda_host import call_cuda_host, cxx_unavailable
from optinv.verify.oracle import check_op
from codegen_harness import BACKENDS

pytestmark = pytest.mark.skipif(cxx_unavailable() is not None, reason=str(cxx_unavailable()))
HOST = {b.dtype: b for b in BACKENDS if b.kind == "cuda-host"}


def mutated(tmp_path, old: str, new: str, name: str = "hop_l2_n3"):
    """A copy of a committed module whose kernels.cu has ``old`` replaced by ``new``."""
    module = importlib.import_module(f"optinv.generated.{name}")
    source = (module.PACKAGE_DIR / "kernels.cu").read_text()
    assert old in source
    (tmp_path / "kernels.cu").write_text(source.replace(old, new))
    return SimpleNamespace(PACKAGE_DIR=tmp_path, KERNELS=module.KERNELS, METADATA=module.METADATA,
                           EINSUMS=module.EINSUMS, D=module.D, K=module.K)


@pytest.mark.parametrize("n", [1, 127, 128, 129, 300])
def test_every_row_of_every_block_count(n):
    module = importlib.import_module("optinv.generated.hop_l2_n3")
    x = np.random.default_rng(n).normal(size=(n, module.D))
    for op in ("forward", "vjp"):
        check_op(module, HOST["float64"], op, x, np.random.default_rng(0))


def test_off_by_one_bound_writes_past_the_end_and_is_caught(tmp_path):
    broken = mutated(tmp_path, "if (row >= n) {", "if (row > n) {")
    x = np.random.default_rng(0).normal(size=(5, broken.D))
    with pytest.raises(AssertionError, match="past the last row"):
        call_cuda_host(broken, "forward", [x])


def test_wrong_row_stride_is_caught_by_the_reference(tmp_path):
    module = importlib.import_module("optinv.generated.hop_l2_n3")
    broken = mutated(tmp_path, f"x[row * {module.D} + 1]", f"x[row * {module.D - 1} + 1]")
    x = np.random.default_rng(0).normal(size=(4, module.D))
    check_op(module, HOST["float64"], "forward", x, np.random.default_rng(0))  # the real kernel passes
    with pytest.raises(AssertionError, match="forward"):
        check_op(broken, HOST["float64"], "forward", x, np.random.default_rng(0))


def test_missing_kernels_cu_is_a_clear_error(tmp_path):
    module = importlib.import_module("optinv.generated.hop_l2_n3")
    empty = SimpleNamespace(PACKAGE_DIR=tmp_path, KERNELS=module.KERNELS)
    with pytest.raises(FileNotFoundError, match="without the 'cuda' target"):
        call_cuda_host(empty, "forward", [np.zeros((2, module.D))])

