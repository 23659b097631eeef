"""The ``triton`` target in Triton's interpreter (``TRITON_INTERPRET=1``) on CPU tensors.

The harness (kind ``triton-interpret``) checks every op of every committed
module against the engine; kind ``triton`` (a CUDA device) is SKIP here.
Here: row counts around the block size (the masked last block), float32, and
bad input.  Skipped when triton is not installed.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("triton")
torch = pytest.importorskip("torch")

from optinv.codegen.targets.triton_source import interpreted_kernels  # noqa: E402


def committed(name: str = "hop_l2_n3"):
    return importlib.import_module(f"optinv.generated.{name}")


@pytest.mark.parametrize("n", [1, 127, 128, 129, 257])
def test_every_block_and_the_masked_tail_match_the_c_kernel(n):
    module = committed()
    kernels = interpreted_kernels(module)
    assert kernels.BLOCK == 128  # so n = 127, 128, 129, 257 straddle block boundaries
    rng = np.random.default_rng(n)
    x, u = rng.normal(size=(n, module.D)), rng.normal(size=(n, module.D))
    g = rng.normal(size=(n, module.K))
    t = torch.from_numpy
    pairs = [(kernels.forward(t(x)), module.forward(x)), (kernels.vjp(t(x), t(g)), module.vjp(x, g)),
             (kernels.jvp(t(x), t(u)), module.jvp(x, u)), (kernels.hvp(t(x), t(g), t(u)), module.hvp(x, g, u))]
    for ours, ref in pairs:
        assert ours.shape == ref.shape
        assert np.allclose(ours.numpy(), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_float32_and_empty_batches():
    module = committed()
    kernels = interpreted_kernels(module)
    x = np.random.default_rng(0).normal(size=(5, module.D)).astype(np.float32)
    ours = kernels.forward(torch.from_numpy(x))
    assert ours.dtype == torch.float32
    ref = module.forward(x.astype(np.float64))
    assert np.allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert kernels.forward(torch.zeros(0, module.D)).shape == (0, module.K)


def test_bad_input_is_a_clear_error():
    module = committed()
    kernels = interpreted_kernels(module)
    with pytest.raises(ValueError, match=f"expected shape \\(n, {module.D}\\)"):
        kernels.forward(torch.zeros(3, module.D + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype and device of x"):
        kernels.vjp(torch.zeros(3, module.D, dtype=torch.float64), torch.zeros(3, module.K, dtype=torch.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        kernels.forward(torch.zeros(3, module.D, dtype=torch.int64))
