"""The ``torch_library`` target: the C kernels as registered custom operators.

The harness (kind ``torch-library``) checks every op through autograd of the
operators on every committed module.  Here: ``torch.compile(fullgraph=True)``
of energy and forces (graph breaks would raise) gives the C kernel's values
with the operators in the graph, training on forces matches eager mode,
``opcheck`` accepts the registrations, gradcheck/gradgradcheck pass (double
backward in eager), and a third derivative is a clear error.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

MODULE = "hop_l2_n3"


def committed(name: str = MODULE):
    return importlib.import_module(f"optinv.generated.{name}")


def mlp_head(K: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(K, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()


@pytest.fixture
def trace_autograd():
    # torch.compile traces torch.autograd.grad (forces inside the graph) only with this switch on
    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        yield
    torch._dynamo.reset()


def test_compiled_energy_and_forces_fullgraph_match_the_c_kernel(trace_autograd):
    module = committed()
    head = mlp_head(module.K)

    def energy_and_forces(x):
        energy = head(module.torch_library_invariants(x)).sum()
        (grad,) = torch.autograd.grad(energy, x, create_graph=True)
        return energy, -grad

    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    x = np.random.default_rng(0).normal(size=(9, module.D))
    inv = torch.from_numpy(module.forward(x)).requires_grad_(True)
    (dE_dI,) = torch.autograd.grad(head(inv).sum(), inv)
    expected_forces = -module.vjp(x, dE_dI.numpy())
    expected_energy = head(torch.from_numpy(module.forward(x))).sum().item()

    for backend in ("inductor", recording_backend):
        compiled = torch.compile(energy_and_forces, fullgraph=True, backend=backend)
        energy, forces = compiled(torch.from_numpy(x).requires_grad_(True))
        assert np.isclose(energy.item(), expected_energy, rtol=1e-12)
        assert np.allclose(forces.detach().numpy(), expected_forces, rtol=1e-10, atol=1e-13)
    ops = {str(n.target) for gm in graphs for n in gm.graph.nodes if n.op == "call_function"}
    namespace = "optinv_hop_l2_n3_"
    assert any(op.startswith(namespace) and ".forward" in op for op in ops), ops  # the operator, not inlined code


def test_training_on_forces_compiled_matches_eager(trace_autograd):
    module = committed()
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(7, module.D)))
    target = torch.from_numpy(np.random.default_rng(2).normal(size=(7, module.D)))

    def loss_fn(head, x):
        energy = head(module.torch_library_invariants(x)).sum()
        (grad,) = torch.autograd.grad(energy, x, create_graph=True)
        return ((-grad - target) ** 2).sum()  # backward of this needs the HVP operator

    grads = []
    for compile_it in (False, True):
        head = mlp_head(module.K)
        fn = torch.compile(loss_fn, fullgraph=True) if compile_it else loss_fn
        fn(head, x.clone().requires_grad_(True)).backward()
        # the last bias does not move the forces: no gradient (None) in either mode
        grads.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in head.parameters()])
    assert sum(g.abs().sum().item() for g in grads[0]) > 0
    for eager, compiled in zip(*grads):
        assert torch.allclose(eager, compiled, rtol=1e-10, atol=1e-12)


def test_opcheck_accepts_every_operator():
    module = committed()
    ops = module.torch_library_ops()
    rng = np.random.default_rng(3)
    x, u = (torch.from_numpy(rng.normal(size=(4, module.D))) for _ in range(2))
    g = torch.from_numpy(rng.normal(size=(4, module.K)))
    args = {"forward": (x,), "vjp": (x, g), "jvp": (x, u), "hvp": (x, g, u)}
    for name, op in ops.items():
        torch.library.opcheck(op, args[name])


def test_gradcheck_and_gradgradcheck_in_eager_mode():
    module = committed()
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(3, module.D))).requires_grad_(True)
    assert torch.autograd.gradcheck(module.torch_library_invariants, (x,))
    assert torch.autograd.gradgradcheck(module.torch_library_invariants, (x,))


def test_third_derivative_and_bad_input_are_clear_errors():
    module = committed()
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(3, module.D))).requires_grad_(True)
    y = module.torch_library_invariants(x)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (hx,) = torch.autograd.grad(gx.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="hvp"):
        torch.autograd.grad(hx.sum(), x)
    with pytest.raises(ValueError, match=f"expected shape \\(..., {module.D}\\)"):
        module.torch_library_invariants(torch.zeros(2, module.D + 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        module.torch_library_invariants(torch.zeros(2, module.D, dtype=torch.int64))
