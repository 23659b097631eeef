"""The ``jax`` target: straight-line jax.numpy under jit, grad, jacfwd/jacrev and vmap.

The harness (test_codegen_backends.py, kind ``jax``) checks the printed
kernels against the engine on every committed module.  Here: what a JAX user
does with ``jax_invariants``, checked against the C kernel and the engine.
Skipped when jax is not installed (``pip install 'optinv[jax]'``).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from optinv.algebra.evaluate import gradient  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402
from optinv.codegen.targets.jax_source import call_jax_autodiff  # noqa: E402
from optinv.codegen.targets.base import backends_for  # noqa: E402
from optinv.testing import as_graphs  # noqa: E402
from optinv.verify.oracle import check_op  # noqa: E402


def committed(name: str = "hop_l3_n3"):
    return importlib.import_module(f"optinv.generated.{name}")


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_jit_grad_of_an_energy_matches_the_c_kernels_vjp():
    module = committed("hop_l3_n4")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(11, module.D))
    W, v = rng.normal(size=(module.K, 8)) / 4, rng.normal(size=8)

    def energy(x):
        return jnp.sum(jnp.tanh(module.jax_invariants(x) @ W) @ v)

    forces = np.asarray(jax.jit(jax.grad(energy))(jnp.asarray(x)))
    inv = module.forward(x)  # dE/dI by hand, then the C kernel's VJP
    dE_dI = ((1 - np.tanh(inv @ W) ** 2) * v) @ W.T
    expected = module.vjp(x, dE_dI)
    assert np.allclose(forces, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_jacfwd_jacrev_and_vmap_agree_with_the_engine():
    module = committed()
    sig = Signature.from_dict(module.METADATA["signature"])
    x = np.random.default_rng(1).normal(size=(3, module.D))
    jac = gradient(as_graphs(module.EINSUMS, sig), x, sig)  # (N, K, D), independent of generated code
    for transform in (jax.jacfwd, jax.jacrev):
        ours = np.asarray(jax.vmap(transform(module.jax_invariants))(jnp.asarray(x)))
        assert np.allclose(ours, jac, rtol=1e-10, atol=1e-12 * np.abs(jac).max()), transform.__name__
    rows = np.asarray(jax.vmap(module.jax_invariants)(jnp.asarray(x)))  # one row at a time: (D,) -> (K,)
    assert np.allclose(rows, module.forward(x), rtol=1e-12, atol=1e-14)


def test_float32_under_jit_matches_the_c_kernel():
    module = committed()
    x = np.random.default_rng(2).normal(size=(5, module.D)).astype(np.float32)
    with jax.enable_x64(False):
        ours = np.asarray(jax.jit(module.jax_invariants)(jnp.asarray(x)))
    assert ours.dtype == np.float32
    ref = module.forward(x.astype(np.float64))
    assert np.allclose(ours, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("op", ["vjp", "jvp", "hvp"])
def test_autodiff_of_the_printed_forward_through_the_oracle(op):
    module = committed()
    (backend, _) = backends_for("jax-autodiff", call_jax_autodiff)
    x = np.random.default_rng(3).normal(size=(4, module.D))
    check_op(module, backend, op, x, np.random.default_rng(4))


def test_bad_shape_is_a_clear_error():
    module = committed()
    with pytest.raises(ValueError, match=f"expected shape \\(..., {module.D}\\)"):
        module.jax_invariants(jnp.zeros((2, module.D + 1)))


def test_c_kernel_from_jax_matches_the_straight_line_target_to_second_order():
    """``jax_c_invariants`` (pure_callback + custom_vjp on the C kernels): jit, vmap, grad of a force loss."""
    module = committed()
    rng = np.random.default_rng(5)
    x, target = rng.normal(size=(6, module.D)), rng.normal(size=(6, module.D))
    W = rng.normal(size=(module.K,)) / 4

    def force_loss(invariants):
        def energy(x):
            return jnp.sum(jnp.tanh(invariants(x)) @ W)

        return lambda x: jnp.sum((-jax.grad(energy)(x) - target) ** 2)

    ours = np.asarray(jax.jit(jax.grad(force_loss(module.jax_c_invariants)))(jnp.asarray(x)))
    ref = np.asarray(jax.grad(force_loss(module.jax_invariants))(jnp.asarray(x)))
    assert np.allclose(ours, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    rows = np.asarray(jax.vmap(module.jax_c_invariants)(jnp.asarray(x)))
    assert np.allclose(rows, module.forward(x), rtol=1e-14, atol=0)
    with pytest.raises(TypeError, match="custom_vjp"):  # forward mode is not defined for a custom_vjp
        jax.jacfwd(module.jax_c_invariants)(jnp.asarray(x[0]))
