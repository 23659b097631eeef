"""The ``jax_ffi`` target: the C kernels in JAX through the XLA FFI (``jax_ffi_invariants``).

The harness (test_codegen_backends.py, kind ``jax-ffi``) checks every op on
every committed module against the engine.  Here: what a JAX user does
(``jit``, ``grad`` to second order, ``vmap``), checked against the C kernel
through the NumPy API, the ``pure_callback`` route and the straight-line
``jax`` target; bad input; and the build cache refusing a tampered library.

The handlers' library is the same for every module; its first build (g++
against jaxlib's FFI headers) takes about 2.5 s of CPU (5 s wall on the busy
2-core machine); with hop_l3_n3's C kernels the fixture ``module`` took 4.6 s
wall from an empty cache.  The tamper test builds it once more in a private
cache (4.4 s).
Skipped when jax is not installed (``pip install 'optinv[jax]'``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from optinv.algebra.signature import Signature  # noqa: E402
from optinv.codegen import compile_module, load_module  # noqa: E402
from optinv.codegen.runtime import jax_ffi, native  # noqa: E402
from optinv.codegen.targets.jax_ffi import jax_ffi_unavailable  # noqa: E402

if jax_ffi_unavailable():
    pytest.skip(jax_ffi_unavailable(), allow_module_level=True)


@pytest.fixture(scope="module")
def module():
    """hop_l3_n3 with its FFI handlers built, loaded and bound (the one compile of this file)."""
    m = importlib.import_module("optinv.generated.hop_l3_n3")
    start = time.perf_counter()
    m.jax_ffi_invariants(jnp.zeros((1, m.D), jnp.float32))
    print(f"jax_ffi handlers ready in {time.perf_counter() - start:.1f} s (wall; a build if the cache was empty)")
    return m


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def rows(m, n, seed, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=(n, m.D)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_are_the_c_kernels_bit_for_bit(module, dtype):
    """XLA hands the kernel the same rows the NumPy API does: identical bits, eager and jitted, any batch shape."""
    x = rows(module, 37, 0, dtype)  # 37: two full blocks of lanes and a tail
    expected = module.forward(x)
    for f in (module.jax_ffi_invariants, jax.jit(module.jax_ffi_invariants)):
        ours = np.asarray(f(jnp.asarray(x)))
        assert ours.dtype == dtype
        np.testing.assert_array_equal(ours, expected)
    batched = np.asarray(module.jax_ffi_invariants(jnp.asarray(x[:36].reshape(3, 4, 3, module.D))))
    np.testing.assert_array_equal(batched.reshape(36, module.K), expected[:36])
    assert module.jax_ffi_invariants(jnp.zeros((0, module.D), dtype)).shape == (0, module.K)


def test_jit_grad_of_an_energy_is_the_c_kernels_vjp(module):
    x = rows(module, 11, 1)
    rng = np.random.default_rng(2)
    W, v = rng.normal(size=(module.K, 8)) / 4, rng.normal(size=8)

    def energy(x):
        return jnp.sum(jnp.tanh(module.jax_ffi_invariants(x) @ W) @ v)

    forces = np.asarray(jax.jit(jax.grad(energy))(jnp.asarray(x)))
    inv = module.forward(x)  # dE/dI by hand, then the C kernel's VJP through the NumPy API
    expected = module.vjp(x, ((1 - np.tanh(inv @ W) ** 2) * v) @ W.T)
    np.testing.assert_allclose(forces, expected, rtol=1e-12, atol=1e-14 * np.abs(expected).max())


def force_loss(invariants, W, target):
    """Grad of this needs the second derivative: (d/dx) |dE/dx - target|^2."""

    def energy(x):
        return jnp.sum(jnp.tanh(invariants(x)) @ W)

    return lambda x: jnp.sum((-jax.grad(energy)(x) - target) ** 2)


def test_grad_of_a_force_loss_matches_pure_callback_and_straight_line_jax(module):
    rng = np.random.default_rng(3)
    x, target = jnp.asarray(rows(module, 6, 4)), jnp.asarray(rng.normal(size=(6, module.D)))
    W = rng.normal(size=(module.K,)) / 4
    ours = np.asarray(jax.jit(jax.grad(force_loss(module.jax_ffi_invariants, W, target)))(x))
    callback = np.asarray(jax.jit(jax.grad(force_loss(module.jax_c_invariants, W, target)))(x))
    straight = np.asarray(jax.grad(force_loss(module.jax_invariants, W, target))(x))
    np.testing.assert_allclose(ours, callback, rtol=1e-13, atol=1e-14 * np.abs(callback).max())  # same C kernels
    np.testing.assert_allclose(ours, straight, rtol=1e-10, atol=1e-12 * np.abs(straight).max())  # other code


def test_float32_grad_agrees_with_float64(module):
    x = rows(module, 9, 5)
    W = np.random.default_rng(6).normal(size=(module.K,)) / 4

    def forces(dtype):
        f = jax.jit(jax.grad(lambda x: jnp.sum(jnp.tanh(module.jax_ffi_invariants(x)) @ W.astype(dtype))))
        return np.asarray(f(jnp.asarray(x.astype(dtype))))

    lo, hi = forces(np.float32), forces(np.float64)
    assert lo.dtype == np.float32
    np.testing.assert_allclose(lo, hi, rtol=1e-3, atol=1e-4 * np.abs(hi).max())


def test_vmap_of_rows_and_of_forces(module):
    x = rows(module, 5, 7)
    one_row = np.asarray(jax.vmap(module.jax_ffi_invariants)(jnp.asarray(x)))  # each call sees (D,)
    np.testing.assert_array_equal(one_row, module.forward(x))
    W = np.random.default_rng(8).normal(size=(module.K,))

    def energy(r):
        return jnp.tanh(module.jax_ffi_invariants(r)) @ W

    per_row = np.asarray(jax.vmap(jax.grad(energy))(jnp.asarray(x)))
    expected = module.vjp(x, (1 - np.tanh(module.forward(x)) ** 2) * W)
    np.testing.assert_allclose(per_row, expected, rtol=1e-12, atol=1e-14 * np.abs(expected).max())
    jac = np.asarray(jax.vmap(jax.jacrev(module.jax_ffi_invariants))(jnp.asarray(x)))  # vmap of a vmapped VJP
    for k in range(module.K):
        g = np.zeros((5, module.K))
        g[:, k] = 1
        np.testing.assert_allclose(jac[:, k], module.vjp(x, g), rtol=1e-12, atol=1e-13)


def test_bad_input_is_a_clear_error(module):
    with pytest.raises(ValueError, match=rf"x: expected shape \(\.\.\., {module.D}\), got \(2, {module.D + 1}\)"):
        module.jax_ffi_invariants(jnp.zeros((2, module.D + 1)))
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., \d+\), got \(\)"):
        module.jax_ffi_invariants(jnp.float64(1.0))
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got int32"):
        module.jax_ffi_invariants(jnp.zeros((2, module.D), jnp.int32))
    with pytest.raises(TypeError, match="expected dtype float32 or float64, got float16"):
        jax.jit(module.jax_ffi_invariants)(jnp.zeros((2, module.D), jnp.float16))
    with pytest.raises(TypeError, match="custom_vjp"):  # forward mode is not defined for a custom_vjp
        jax.jacfwd(module.jax_ffi_invariants)(jnp.zeros(module.D))


def test_the_handlers_check_shapes_and_bindings_themselves(module):
    """A program that calls the targets directly (not through jax_ffi_invariants) gets an error, not a bad read."""
    shim = jax_ffi.handlers(module.PACKAGE_DIR / "jax_ffi.cc", native)
    key = native.source_identity(module._c.source)

    def run(kernel, *args, key=key, width=module.K):
        out = jax.ShapeDtypeStruct(args[0].shape[:-1] + (width,), args[0].dtype)
        return jax.ffi.ffi_call(shim.targets[kernel, "f64"], out)(*args, module=key, threads=np.int64(1))

    x = jnp.zeros((3, module.D))
    np.testing.assert_array_equal(np.asarray(run("forward", x)), module.forward(np.zeros((3, module.D))))
    with pytest.raises(Exception, match=rf"x: expected \(\.\.\., {module.D}\), got \(3, {module.D + 1}\)"):
        run("forward", jnp.zeros((3, module.D + 1)))
    with pytest.raises(Exception, match=rf"g: expected 3 rows of {module.K}, got \(2, {module.K}\)"):
        run("vjp", x, jnp.zeros((2, module.K)), width=module.D)
    with pytest.raises(Exception, match=rf"out: expected 3 rows of {module.K}, got \(3, {module.K + 1}\)"):
        run("forward", x, width=module.K + 1)
    with pytest.raises(Exception, match="module 0{64} is not bound in this process"):
        run("forward", x, key="0" * 64)


SIG = Signature.from_l_max(1)
X = np.array([[0.5, 1.0, 2.0, 2.0], [1.0, 0.0, 0.0, 3.0]])
EXPECTED = np.stack([X[:, 0], (X[:, 1:] ** 2).sum(1)], axis=1)  # [s, v.v], independent of generated code


def test_a_tampered_cached_library_is_refused_before_it_runs(tmp_path, monkeypatch):
    """A planted handlers library with a valid stamp: its identity is checked at load, before any of it is called.

    Its ``optinv_ffi_bind`` and ``optinv_ffi_kernel_count`` would write a canary if called; the loader rebuilds
    the library from the package's source instead, and the answers come from the real kernels.
    """
    monkeypatch.setenv("OPTINV_CACHE_DIR", str(tmp_path / "cache"))
    package = compile_module(["->,s", "i,i->,v,v"], SIG, "sv_ffi", tmp_path / "pkg")  # self-contained: own runtime
    m = load_module(package)
    runtime = sys.modules[type(m._c).__module__]
    ffi_runtime = importlib.import_module(f"{m.__name__}._jax_ffi")
    lib = runtime.library_path(package / "jax_ffi.cc", ffi_runtime.toolchain(runtime))[0]
    canary = tmp_path / "canary"
    src = tmp_path / "planted.c"
    src.write_text(f'#include <stdio.h>\n#include <stdint.h>\n'
                   f'static void touch(void) {{ FILE *f = fopen("{canary}", "w"); if (f) fclose(f); }}\n'
                   f'int optinv_ffi_kernel_count(void) {{ touch(); return 4; }}\n'
                   f'int optinv_ffi_bind(const char *k, int64_t d, int64_t c, void **p) {{ touch(); return 0; }}\n'
                   f'const char optinv_source_sha256[] = "{"0" * 64}";\n')
    runtime.private_dir(lib.parent)
    subprocess.run([native.compiler(), "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    lib.with_suffix(".sha256").write_text(native._sha256(lib) + "\n")
    planted = native._sha256(lib)

    ours = np.asarray(m.jax_ffi_invariants(jnp.asarray(X)))
    np.testing.assert_array_equal(ours, EXPECTED)
    assert not canary.exists()
    assert native._sha256(lib) != planted  # rebuilt in place from the package's jax_ffi.cc
    assert os.stat(lib.parent).st_mode & 0o077 == 0


def test_a_compiled_package_runs_it_with_optinv_unimportable(tmp_path):
    """The vendored package carries the handlers' source and runtime (``_jax_ffi.py``): no optinv needed."""
    compile_module(["->,s", "i,i->,v,v"], SIG, "vendored_ffi", tmp_path)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["optinv"] = None  # any `import optinv...` now raises ImportError
        sys.path.insert(0, {str(tmp_path)!r})
        import jax, numpy as np, vendored_ffi
        jax.config.update("jax_enable_x64", True)
        x = jax.numpy.asarray({X.tolist()!r})
        print(vendored_ffi.jax_ffi_invariants(x).tolist())
        print(jax.grad(lambda x: vendored_ffi.jax_ffi_invariants(x)[:, 1].sum())(x).tolist())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    values, grad = (eval(line) for line in done.stdout.splitlines())
    np.testing.assert_array_equal(values, EXPECTED)
    np.testing.assert_array_equal(np.asarray(grad)[:, 1:], 2 * X[:, 1:])  # d(v.v)/dv = 2v
    np.testing.assert_array_equal(np.asarray(grad)[:, 0], 0)


def test_one_handlers_library_serves_every_committed_module():
    """jax_ffi.cc depends on no module's data (kernels are bound at run time): one text, one cache entry."""
    from optinv.codegen.catalog import committed_modules, generated_dir

    sources = [generated_dir() / name / "jax_ffi.cc" for name in sorted(committed_modules())]
    assert len({s.read_bytes() for s in sources}) == 1
    tc = jax_ffi.toolchain(native)
    assert len({native.library_path(s, tc)[0] for s in sources}) == 1


def test_a_missing_cxx_compiler_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTINV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    source = importlib.import_module("optinv.generated.hop_l1_n2").PACKAGE_DIR / "jax_ffi.cc"
    with pytest.raises(native.KernelBuildError, match=r"^C\+\+ compiler '.*no-such-c\+\+' not found: install one "
                                                      r"\(g\+\+ or clang\+\+\) or set CXX to a working C\+\+ compiler$"):
        jax_ffi.handlers(source, native)
