"""The ``torch_cpp`` target: the C kernels as operators registered from C++ (``TORCH_LIBRARY``).

One module (hop_l3_n4), one build (module-scoped; about 20 s of one core, up to
a minute on a busy machine).  Checked here: every op through the harness (the
same oracle as ``optinv verify --backends torch-cpp``), autograd by
gradcheck/gradgradcheck, bad input refused by name, a scripted energy-and-forces
model saved and run in a fresh process that only loads the ``.so`` (no optinv
importable) with the same energies, forces and training gradients, and a
tampered, planted or foreign library in the cache refused before it is loaded.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from optinv.algebra.signature import Signature  # noqa: E402
from optinv.codegen.runtime import native, torch_cpp  # noqa: E402
from optinv.codegen.targets.torch_cpp import torch_cpp_unavailable  # noqa: E402
from optinv.testing import rows  # noqa: E402

from codegen_harness import BACKENDS, check_backend  # noqa: E402

MODULE = "hop_l3_n4"
WHY = torch_cpp_unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"torch_cpp: {WHY}")


@pytest.fixture(scope="module")
def module():
    return importlib.import_module(f"optinv.generated.{MODULE}")


@pytest.fixture(scope="module")
def library(module) -> Path:
    """The one build of this file (in the user's cache: later runs reuse it)."""
    return module.torch_cpp_library()


@pytest.fixture(scope="module")
def ops(module, library):
    return module.torch_cpp_ops()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.kind == "torch-cpp"], ids=lambda b: b.name)
@pytest.mark.parametrize("op", ["forward", "vjp", "jvp", "hvp"])
def test_every_op_matches_the_reference(module, library, op, backend):
    @settings(max_examples=10, deadline=None)
    @given(x=rows(Signature.from_dict(module.METADATA["signature"]), max_rows=5), seed=st.integers(0, 2**32 - 1))
    def run(x, seed):
        check_backend(module, backend, op, x, np.random.default_rng(seed))

    run()


def test_ops_equal_the_c_kernels_and_autograd_passes_gradcheck(module, ops):
    rng = np.random.default_rng(0)
    x, g, u = rng.normal(size=(9, module.D)), rng.normal(size=(9, module.K)), rng.normal(size=(9, module.D))
    t = [torch.from_numpy(a) for a in (x, g, u)]
    for name, args in (("forward", [0]), ("vjp", [0, 1]), ("jvp", [0, 2]), ("hvp", [0, 1, 2])):
        np.testing.assert_array_equal(getattr(ops, name)(*(t[i] for i in args)).numpy(),
                                      getattr(module, name)(*((x, g, u)[i] for i in args)), err_msg=name)
    x, g, u = (a[:3].clone().requires_grad_(True) for a in t)
    assert torch.autograd.gradcheck(ops.invariants, (x,))
    assert torch.autograd.gradgradcheck(ops.invariants, (x,))
    assert torch.autograd.gradcheck(ops.vjp, (x, g))
    assert torch.autograd.gradcheck(ops.jvp, (x, u))
    # (..., D) batches, float32, empty and non-contiguous inputs
    batch = torch.from_numpy(rng.normal(size=(2, 3, module.D)))
    np.testing.assert_array_equal(ops.invariants(batch).numpy(),
                                  module.forward(batch.numpy().reshape(6, -1)).reshape(2, 3, module.K))
    x32 = torch.from_numpy(rng.normal(size=(5, module.D)).astype(np.float32))
    np.testing.assert_array_equal(ops.forward(x32).numpy(), module.forward(x32.numpy()))
    assert ops.forward(torch.zeros(0, module.D)).shape == (0, module.K)
    strided = torch.from_numpy(rng.normal(size=(module.D, 7))).t()
    assert not strided.is_contiguous()
    np.testing.assert_array_equal(ops.forward(strided).numpy(), module.forward(strided.numpy()))


def test_third_derivatives_raise_by_name(module, ops):
    x = torch.randn(3, module.D, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(ops.invariants(x).sum(), x, create_graph=True)
    (hx,) = torch.autograd.grad(gx.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="hvp has no derivative"):
        torch.autograd.grad(hx.sum(), x)


def test_bad_input_gets_a_clear_error(module, ops):
    D, K = module.D, module.K
    with pytest.raises(ValueError, match=rf"::forward: x: expected shape \(n, {D}\), got \[3, {D + 1}\]"):
        ops.forward(torch.zeros(3, D + 1))
    with pytest.raises(ValueError, match=rf"::invariants: x: expected shape \(\.\.\., {D}\)"):
        ops.invariants(torch.zeros(2, 3, D - 1))
    with pytest.raises(TypeError, match="::forward: x: expected dtype float32 or float64, got Long"):
        ops.forward(torch.zeros(3, D, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"::vjp: g: expected the dtype of x \(Float\), got Double"):
        ops.vjp(torch.zeros(3, D), torch.zeros(3, K, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"::hvp: u: expected 3 rows like x, got 2"):
        ops.hvp(torch.zeros(3, D), torch.zeros(3, K), torch.zeros(2, D))
    with pytest.raises(ValueError, match="::forward: x: expected a dense"):
        ops.forward(torch.zeros(3, D).to_sparse())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (a CPU-only torch cannot make CUDA tensors)")
def test_cuda_tensors_are_refused_by_name(module, ops):
    with pytest.raises(ValueError, match="expected a CPU tensor"):
        ops.forward(torch.zeros(3, module.D, device="cuda"))


def energy_and_forces_model(ops, K: int) -> torch.nn.Module:
    invariants = ops.invariants  # an operator: TorchScript records its qualified name

    class EnergyAndForces(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = torch.nn.Sequential(torch.nn.Linear(K, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

        def forward(self, x: torch.Tensor):
            x = x.detach().requires_grad_(True)
            energy = self.mlp(invariants(x)).sum()
            grads = torch.autograd.grad([energy], [x], create_graph=True)
            forces = grads[0]
            assert forces is not None
            return energy, -forces

    torch.manual_seed(0)
    return EnergyAndForces().double()


def training_gradients(model, x, forces_ref):
    """d(force loss)/d(parameters): needs the double backward of the operators."""
    model.zero_grad()
    _, forces = model(x)
    ((forces - forces_ref) ** 2).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_scripted_model_runs_in_a_fresh_process_with_only_the_library(module, ops, library, tmp_path):
    model = energy_and_forces_model(ops, module.K)
    scripted = torch.jit.script(model)
    assert f"ops.{module.torch_cpp_ops().name}.invariants" in scripted.code
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(6, module.D)))
    energy, forces = scripted(x)
    # independent reference: the C kernel's vjp of the MLP's gradient with respect to the invariants
    inv = torch.from_numpy(module.forward(x.numpy())).requires_grad_(True)
    (dE_dI,) = torch.autograd.grad(model.mlp(inv).sum(), inv)
    np.testing.assert_allclose(-forces.detach().numpy(), module.vjp(x.numpy(), dE_dI.numpy()), rtol=1e-12, atol=1e-14)
    forces_ref = torch.zeros_like(x)
    grads = training_gradients(scripted, x, forces_ref)

    scripted.save(str(tmp_path / "model.pt"))
    np.save(tmp_path / "x.npy", x.numpy())
    code = textwrap.dedent(f"""
        import sys
        sys.modules["optinv"] = None  # the saved model must not need our Python code
        import numpy as np, torch
        torch.ops.load_library({str(library)!r})
        model = torch.jit.load({str(tmp_path / 'model.pt')!r})
        x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))
        e, f = model(x)
        model.zero_grad()
        ((model(x)[1] - torch.zeros_like(x)) ** 2).sum().backward()
        np.save({str(tmp_path / 'e.npy')!r}, e.detach().numpy())
        np.save({str(tmp_path / 'f.npy')!r}, f.detach().numpy())
        for k, p in enumerate(model.parameters()):
            np.save({str(tmp_path)!r} + f"/grad{{k}}.npy", p.grad.numpy())
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), energy.detach().numpy(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), forces.detach().numpy(), rtol=1e-12, atol=1e-14)
    for k, g in enumerate(grads):
        np.testing.assert_allclose(np.load(tmp_path / f"grad{k}.npy"), g.numpy(), rtol=1e-12, atol=1e-14)


def test_torch_compile_traces_the_operators_without_a_graph_break(module, ops):
    model = energy_and_forces_model(ops, module.K)
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(5, module.D)))
    energy = torch.compile(lambda x: model.mlp(ops.invariants(x)).sum(), fullgraph=True, backend="aot_eager")
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(energy(xr), xr)
    e_ref, f_ref = model(x)
    np.testing.assert_allclose(energy(x).detach().numpy(), e_ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(-gx.numpy(), f_ref.detach().numpy(), rtol=1e-12, atol=1e-14)


# -- the build cache: only a library built from these exact sources is ever loaded -----------------


class WouldRebuild(Exception):
    pass


@pytest.fixture
def private_cache(tmp_path, monkeypatch, module, library):
    """An empty cache of our own, where any attempt to compile raises WouldRebuild (nothing is loaded)."""
    monkeypatch.setenv("OPTINV_CACHE_DIR", str(tmp_path / "cache"))

    def refuse(self, *args, **kwargs):
        raise WouldRebuild(self.cpp)

    monkeypatch.setattr(torch_cpp.TorchOps, "_compile", refuse)
    return tmp_path


def unloaded(package_dir: Path) -> torch_cpp.TorchOps:
    """The loader of a package's sources under a namespace nothing registered (so load() really loads)."""
    return torch_cpp.TorchOps(native, package_dir, "optinv_cpp_test_never_registered")


def place(ops_loader: torch_cpp.TorchOps, data: bytes) -> Path:
    """Put ``data`` where ``ops_loader``'s library goes, with a stamp matching it."""
    lib = ops_loader.library_path()[0]
    native.private_dir(lib.parent)
    lib.write_bytes(data)
    lib.with_suffix(".sha256").write_text(native._sha256(lib) + "\n")
    return lib


def test_the_genuine_library_is_used_without_a_rebuild(module, library, private_cache):
    loader = unloaded(module.PACKAGE_DIR)
    lib = place(loader, library.read_bytes())
    assert loader.build() == lib


def test_a_tampered_library_is_rebuilt_before_it_is_loaded(module, library, private_cache):
    loader = unloaded(module.PACKAGE_DIR)
    data = bytearray(library.read_bytes())
    lib = place(loader, bytes(data))
    data[len(data) // 2] ^= 0xFF  # different bytes, stale stamp
    lib.write_bytes(bytes(data))
    with pytest.raises(WouldRebuild):
        loader.load()
    assert not torch_cpp._registered(loader.namespace)


def test_a_planted_library_with_a_valid_stamp_never_runs(module, library, private_cache):
    loader = unloaded(module.PACKAGE_DIR)
    canary = private_cache / "canary"
    src = private_cache / "planted.c"
    src.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void p(void) '
                   f'{{ FILE *f = fopen("{canary}", "w"); if (f) fclose(f); }}\n')
    so = private_cache / "planted.so"
    subprocess.run([native.compiler(), "-shared", "-fPIC", str(src), "-o", str(so)], check=True)
    place(loader, so.read_bytes())
    with pytest.raises(WouldRebuild):
        loader.load()
    assert not canary.exists()


def test_a_library_built_from_other_sources_is_refused(module, library, private_cache):
    """The genuine library of hop_l3_n4, in the cache entry of a package whose C++ source differs by a comment."""
    other = private_cache / "pkg"
    shutil.copytree(module.PACKAGE_DIR, other, ignore=shutil.ignore_patterns("__pycache__"))
    (other / "torch_ops.cpp").write_text((other / "torch_ops.cpp").read_text() + "// edited\n")
    loader = unloaded(other)
    place(loader, library.read_bytes())
    with pytest.raises(WouldRebuild):
        loader.load()


def test_a_namespace_registered_by_another_copy_is_refused_not_reloaded(module, library, monkeypatch):
    """Loading a second copy would abort the process (one TORCH_LIBRARY per namespace): refused by name."""
    monkeypatch.setattr(torch_cpp, "_LOADED", {})  # as a bundled package's own copy of the runtime sees it
    with pytest.raises(RuntimeError, match="already registered in this process"):
        torch_cpp.TorchOps(native, module.PACKAGE_DIR, module.torch_cpp_ops().name).load()


def test_a_missing_cxx_compiler_is_named(module, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch_cpp.shutil, "which", lambda name: None)
    assert "no C++ compiler" in torch_cpp_unavailable()
    with pytest.raises(native.KernelBuildError, match="no C\\+\\+ compiler.*set CXX"):
        unloaded(module.PACKAGE_DIR).library_path()


def test_a_self_contained_package_builds_through_its_own_runtime_copy(tmp_path):
    """A compiled package binds its bundled ``_torch_cpp.py`` to its own ``_runtime.py`` (checked without a build)."""
    from optinv.codegen import compile_module, load_module

    pkg = load_module(compile_module(["->,s", "i,i->,v,v"], Signature.from_l_max(1), "sv_cpp", tmp_path))
    loader = pkg._torch_cpp_loader()
    assert type(loader).__module__ == f"{pkg.__name__}._torch_cpp"
    assert loader.native.__name__ == f"{pkg.__name__}._runtime"
    namespace = "optinv_cpp_sv_cpp_" + pkg.METADATA["sha256"]["kernels.c"][:12]
    assert loader.namespace == namespace  # the package's name for it and the C++ source's agree
    assert f"TORCH_LIBRARY({namespace}, m)" in (tmp_path / "sv_cpp" / "torch_ops.cpp").read_text()
    lib = loader.library_path()[0]
    assert lib.name == "torch_ops.so" and lib.parent.parent == loader.native.cache_root()
