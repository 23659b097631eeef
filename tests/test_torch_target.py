"""The ``torch`` target: straight-line PyTorch that users script, export, compile and differentiate.

The harness (test_codegen_backends.py) checks the printed kernels
(``torch-source``) and autograd of the printed forward (``torch-autograd``)
against the engine on every committed module.  Here: what deployment needs.
A small model (invariants -> MLP -> energy, forces by autograd) saved with
``torch.jit.script`` and ``torch.export`` and loaded in a fresh process gives
the same energies and forces; third derivatives equal autograd of an
independent einsum implementation of the same invariants.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from optinv.algebra.cartesian import LEVI_CIVITA, tensors_of_rows  # noqa: E402
from optinv.algebra.evaluate import batched_subscripts, node_operands  # noqa: E402
from optinv.algebra.signature import Signature  # noqa: E402
from optinv.testing import as_graphs  # noqa: E402

MODULE = "hop_l2_n3"


def committed(name: str = MODULE):
    return importlib.import_module(f"optinv.generated.{name}")


def einsum_invariants(module):
    """An independent torch implementation: the engine's einsum strings on tensors lifted from the rows."""
    sig = Signature.from_dict(module.METADATA["signature"])
    graphs = as_graphs(module.EINSUMS, sig)
    lift = {name: torch.from_numpy(t) for name, t in tensors_of_rows(np.eye(sig.dim), sig).items()}  # linear
    eps = torch.from_numpy(LEVI_CIVITA.astype(np.float64))

    def invariants(x):
        tensors = {name: torch.tensordot(x, m, dims=([1], [0])) for name, m in lift.items()}
        cols = [tensors[g.labels[0]] if g.n_nodes == 1 else
                torch.einsum(batched_subscripts(g), *node_operands(g, tensors, eps)) for g in graphs]
        return torch.stack(cols, dim=1)

    return invariants


class Energy(torch.nn.Module):
    """Invariants -> MLP -> per-row energies, summed."""

    def __init__(self, invariants: torch.nn.Module, K: int):
        super().__init__()
        self.invariants = invariants
        self.mlp = torch.nn.Sequential(torch.nn.Linear(K, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.invariants(x)).sum()


class EnergyAndForces(torch.nn.Module):
    """Energy and forces (minus its gradient) in one forward, as LAMMPS calls a TorchScript model."""

    def __init__(self, energy: Energy):
        super().__init__()
        self.energy = energy

    def forward(self, x: torch.Tensor):
        x = x.detach().requires_grad_(True)
        energy = self.energy(x)
        grads = torch.autograd.grad([energy], [x], create_graph=True)
        forces = grads[0]
        assert forces is not None
        return energy, -forces


def test_torch_module_matches_the_c_kernel_and_rejects_bad_shapes():
    module = committed()
    x = np.random.default_rng(0).normal(size=(7, module.D))
    layer = module.torch_module()
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        ours = layer(torch.from_numpy(x).to(dtype)).double().numpy()
        assert ours.shape == (7, module.K)
        assert np.allclose(ours, module.forward(x), rtol=rtol, atol=rtol * np.abs(module.forward(x)).max())
    with pytest.raises(ValueError, match=f"expected shape \\(n, {module.D}\\)"):
        layer(torch.zeros(3, module.D + 1, dtype=torch.float64))


def test_scripted_and_exported_model_reload_in_a_fresh_process(tmp_path):
    module = committed()
    torch.manual_seed(0)
    energy_model = Energy(module.torch_module(), module.K).double()
    model = EnergyAndForces(energy_model)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(6, module.D)))
    energy, forces = model(x)
    # the reference forces: the C kernel's VJP of the MLP's gradient with respect to the invariants
    inv = torch.from_numpy(module.forward(x.numpy())).requires_grad_(True)
    (dE_dI,) = torch.autograd.grad(energy_model.mlp(inv).sum(), inv)
    assert np.allclose(-forces.detach().numpy(), module.vjp(x.numpy(), dE_dI.numpy()), rtol=1e-10, atol=1e-12)

    torch.jit.script(model).save(str(tmp_path / "model.pt"))
    # torch.export cannot trace autograd.grad inside forward: export the energy, differentiate the loaded program
    torch.export.save(torch.export.export(energy_model, (x,)), str(tmp_path / "model.pt2"))
    np.save(tmp_path / "x.npy", x.numpy())
    code = textwrap.dedent(f"""
        import sys
        sys.modules["optinv"] = None  # the saved models must not need our Python code
        import numpy as np, torch
        x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))
        scripted = torch.jit.load({str(tmp_path / 'model.pt')!r})
        exported_energy = torch.export.load({str(tmp_path / 'model.pt2')!r}).module()

        def exported(x):
            x = x.clone().requires_grad_(True)
            e = exported_energy(x)
            (g,) = torch.autograd.grad(e, x)
            return e, -g

        for name, m in (("script", scripted), ("export", exported)):
            e, f = m(x)
            np.save({str(tmp_path)!r} + f"/{{name}}_e.npy", e.detach().numpy())
            np.save({str(tmp_path)!r} + f"/{{name}}_f.npy", f.detach().numpy())
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    for name in ("script", "export"):
        assert np.allclose(np.load(tmp_path / f"{name}_e.npy"), energy.detach().numpy(), rtol=1e-12, atol=0), name
        assert np.allclose(np.load(tmp_path / f"{name}_f.npy"), forces.detach().numpy(), rtol=1e-12, atol=1e-14), name


@pytest.mark.parametrize("name", ["hop_l2_n3", "hop_l3_n4"])
def test_third_derivatives_equal_autograd_of_an_independent_implementation(name):
    module = committed(name)
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.normal(size=(4, module.D)))
    w, u, v = (torch.from_numpy(rng.normal(size=s)) for s in ((4, module.K), (4, module.D), (4, module.D)))
    kernels = importlib.import_module(f"optinv.generated.{name}.torch_kernels")

    def third(invariants):
        xr = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad((invariants(xr) * w).sum(), xr, create_graph=True)
        (hu,) = torch.autograd.grad((gx * u).sum(), xr, create_graph=True)
        (tuv,) = torch.autograd.grad((hu * v).sum(), xr)
        return hu.detach(), tuv

    hu_ours, third_ours = third(kernels.forward)
    hu_ref, third_ref = third(einsum_invariants(module))
    scale = third_ref.abs().max().item()
    assert scale > 0  # degree >= 3 invariants: the third derivative is not identically zero
    assert torch.allclose(third_ours, third_ref, rtol=1e-10, atol=1e-12 * scale)
    # the printed HVP kernel agrees with autograd's double backward
    assert torch.allclose(kernels.hvp(x, w, u), hu_ref, rtol=1e-10, atol=1e-12 * hu_ref.abs().max().item())


def test_torch_compile_matches_eager():
    module = committed()
    layer = module.torch_module()
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(9, module.D)))
    compiled = torch.compile(layer, fullgraph=True)
    assert torch.allclose(compiled(x), layer(x), rtol=1e-12, atol=1e-12)
