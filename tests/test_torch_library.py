"""The ``torch_library`` target: the C and CUDA kernels as registered custom operators.

The harness (kinds ``torch-library`` and, on a GPU, ``torch-library-cuda``)
checks every op through autograd of the operators on every committed module.
Here: ``torch.compile(fullgraph=True)`` of energy and forces (graph breaks would
raise) gives the C kernel's values with the operators in the graph, training on
forces matches eager mode, ``opcheck`` accepts the registrations,
gradcheck/gradgradcheck pass (double backward in eager), and a third
derivative is a clear error.

CUDA without a GPU: every operator has a kernel at the CUDA dispatch key; that
kernel, called through the dispatcher's CUDA key with a stand-in runner that
runs ``kernels.cu`` on the host (the ``cuda_host`` shim) in place of CuPy,
checks its arguments and gives the C kernels' values; the autograd formulas and
fake kernels work with that runner and with (fake) CUDA tensors; a package
without the ``cuda`` target refuses CUDA tensors by name.  On a GPU (tests
named ``*cuda*``, skipped here, run by ``benchmarks/gpu.sh``): values against
the C kernels, gradcheck/gradgradcheck in float64, ``torch.compile`` of
energy-and-forces, and the clear errors on real CUDA tensors.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402

from optinv.codegen import compile_request  # noqa: E402
from optinv.codegen.package import load_module  # noqa: E402
from optinv.codegen.request import Request  # noqa: E402
from optinv.codegen.runtime import torch_library  # noqa: E402
from optinv.codegen.targets.base import torch_cuda_unavailable  # noqa: E402
from optinv.codegen.targets.cuda_host import call_cuda_host, cxx_unavailable  # noqa: E402

MODULE = "hop_l2_n3"
OPS = ("forward", "vjp", "jvp", "hvp")
CUDA_KEY = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)


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


# -- CUDA, without a GPU -------------------------------------------------------------------------------------


def namespace_of(module) -> str:
    """The operators' namespace: both kernel sources' hashes (a CUDA kernel change is another operator)."""
    sha = module.METADATA["sha256"]
    return f"optinv_{module.METADATA['name']}_{sha['kernels.c'][:12]}_cu{sha['kernels.cu'][:8]}"


def through_cuda_key(namespace: str, op: str, *args):
    """Call the kernel registered at the CUDA dispatch key, whatever device the arguments are on."""
    return getattr(getattr(torch.ops, namespace), op).default.redispatch(CUDA_KEY, *args)


def c_kernel(module, op: str, *tensors) -> np.ndarray:
    return getattr(module, op)(*(t.numpy() for t in tensors))


def random_args(module, op: str, n: int, dtype, seed: int):
    rng = np.random.default_rng(seed)
    widths = {"x": module.D, "g": module.K, "u": module.D}
    names = {"forward": "x", "vjp": "xg", "jvp": "xu", "hvp": "xgu"}[op]
    return [torch.from_numpy(rng.normal(size=(n, widths[a]))).to(dtype) for a in names]


class HostShimRunner:
    """Stands in for CuPy in the CUDA branch of the adapter's ``KernelRunner``: the module's ``kernels.cu``,
    compiled for the host by the shim, on CPU tensors.  Records what the operators hand it."""

    def __init__(self, package):
        self.package = package
        self.seen = []

    def __call__(self, name: str, *tensors):
        self.seen.append((name, [(t.dtype, tuple(t.shape), t.is_contiguous()) for t in tensors]))
        return torch.from_numpy(call_cuda_host(self.package, name, [t.detach().numpy() for t in tensors]))


needs_cxx = pytest.mark.skipif(cxx_unavailable() is not None, reason=str(cxx_unavailable()))


@pytest.fixture(scope="module")
def host_shim_ops():
    """The operators of the committed module registered (in a namespace of their own) with the host stand-in."""
    module = committed()
    runner = HostShimRunner(module)
    namespace = "optinv_test_host_shim_" + MODULE
    invariants, ops = torch_library.bind(namespace, module.D, module.K, runner)
    return module, namespace, runner, invariants, ops


def test_every_operator_has_cpu_cuda_and_fake_kernels():
    module = committed()
    namespace = namespace_of(module)
    assert set(module.torch_library_ops()) == set(OPS)
    for op in OPS:
        for key in ("CPU", "CUDA", "Meta"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"{namespace}::{op}", key), (op, key)
    # the committed module's own CUDA-key kernel is the glue around the adapter's runner: on CPU tensors
    # (what the runner does for them) it gives the C kernel's values
    x = random_args(module, "forward", 3, torch.float64, 0)[0]
    assert np.allclose(through_cuda_key(namespace, "forward", x).numpy(), module.forward(x.numpy()), rtol=1e-14)


@needs_cxx
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_cuda_key_kernels_on_the_host_shim_match_the_c_kernels(host_shim_ops, dtype):
    module, namespace, runner, _, _ = host_shim_ops
    tol = {"rtol": 1e-11, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-4}
    for k, op in enumerate(OPS):
        args = random_args(module, op, 130, dtype, k)  # two of the runtime's 128-thread blocks
        args[0] = args[0].t().contiguous().t()  # x not contiguous: the glue must hand the kernel contiguous rows
        assert not args[0].is_contiguous()
        runner.seen.clear()
        out = through_cuda_key(namespace, op, *args)
        expected = c_kernel(module, op, *(a.contiguous() for a in args))
        assert out.dtype == dtype and out.shape == expected.shape
        np.testing.assert_allclose(out.numpy(), expected, err_msg=op, **tol)
        assert runner.seen == [(op, [(dtype, tuple(a.shape), True) for a in args])]


@needs_cxx
def test_autograd_and_compile_with_the_host_shim_runner(host_shim_ops, trace_autograd):
    """The autograd formulas and fake kernels around the injected runner: double backward and
    torch.compile(fullgraph=True) give the C kernels' values with kernels.cu doing the arithmetic."""
    module, _, runner, invariants, ops = host_shim_ops
    x = torch.from_numpy(np.random.default_rng(6).normal(size=(4, module.D))).requires_grad_(True)
    assert torch.autograd.gradcheck(invariants, (x,))
    assert torch.autograd.gradgradcheck(invariants, (x,))
    for name, op in ops.items():
        torch.library.opcheck(op, tuple(random_args(module, name, 3, torch.float64, 7)))

    def energy_and_forces(x):
        energy = (invariants(x) ** 2).sum()
        (grad,) = torch.autograd.grad(energy, x, create_graph=True)
        return energy, -grad

    xn = x.detach().numpy()
    inv = module.forward(xn)
    runner.seen.clear()
    energy, forces = torch.compile(energy_and_forces, fullgraph=True, backend="aot_eager")(x)
    assert np.isclose(energy.item(), (inv ** 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(forces.detach().numpy(), -module.vjp(xn, 2 * inv), rtol=1e-10, atol=1e-12)
    assert {name for name, _ in runner.seen} == {"forward", "vjp"}  # the compiled graph called the runner
    (hx,) = torch.autograd.grad(forces.sum(), x)  # backward through the compiled forces: the HVP operator
    hvp = module.hvp(xn, 2 * inv, -np.ones_like(xn)) + 2 * module.vjp(xn, module.jvp(xn, -np.ones_like(xn)))
    np.testing.assert_allclose(hx.numpy(), hvp, rtol=1e-9, atol=1e-11)


def test_fake_kernels_give_cuda_outputs_and_refuse_mixed_devices():
    module = committed()
    ops = module.torch_library_ops()
    widths = {"forward": module.K, "vjp": module.D, "jvp": module.K, "hvp": module.D}
    with FakeTensorMode():  # fake CUDA tensors exist without a GPU: what torch.compile traces with
        for name, op in ops.items():
            args = [torch.empty(a.shape, device="cuda") for a in random_args(module, name, 5, torch.float32, 0)]
            out = op(*args)
            assert (out.device.type, out.dtype, tuple(out.shape)) == ("cuda", torch.float32, (5, widths[name]))
        x = torch.zeros(5, module.D, device="cuda")
        with pytest.raises(ValueError, match=r"g: expected a tensor on the device of x \(cuda:0\), got cpu"):
            ops["vjp"](x, torch.zeros(5, module.K))


def test_bad_input_at_the_cuda_key_is_a_clear_error():
    module = committed()
    namespace = namespace_of(module)
    x = torch.zeros(3, module.D, dtype=torch.float64)
    g = torch.zeros(3, module.K, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"g: expected a tensor on the device of x \(cpu\), got meta"):
        through_cuda_key(namespace, "vjp", x, g.to("meta"))
    with pytest.raises(TypeError, match=r"g: expected the dtype of x \(torch.float64\), got torch.float32"):
        through_cuda_key(namespace, "vjp", x, g.float())
    with pytest.raises(TypeError, match="x: expected dtype float32 or float64, got torch.int64"):
        through_cuda_key(namespace, "forward", x.long())
    with pytest.raises(ValueError, match=rf"x: expected shape \(n, {module.D}\), got \(3, {module.D + 1}\)"):
        through_cuda_key(namespace, "forward", torch.zeros(3, module.D + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"u: expected shape \(n, {module.D}\), got \(2, {module.D}\)"):
        through_cuda_key(namespace, "jvp", x, torch.zeros(2, module.D, dtype=torch.float64))


@pytest.fixture(scope="module")
def package_without_cuda(tmp_path_factory):
    path = compile_request(Request(l_max=1, n_max=2, targets=("c", "torch_library")), "no_cuda_ops",
                           tmp_path_factory.mktemp("no_cuda"))
    assert not (path / "kernels.cu").exists()
    return load_module(path)


def test_package_without_the_cuda_target_refuses_cuda_tensors_by_name(package_without_cuda):
    pkg = package_without_cuda
    ops = pkg.torch_library_ops()
    namespace = f"optinv_no_cuda_ops_{pkg.METADATA['sha256']['kernels.c'][:12]}"  # no CUDA hash: no CUDA kernels
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"{namespace}::forward", "CUDA")
    x = torch.from_numpy(np.random.default_rng(8).normal(size=(3, pkg.D)))
    assert np.allclose(ops["forward"](x).numpy(), pkg.forward(x.numpy()), rtol=1e-14)  # CPU unaffected
    with FakeTensorMode():  # a CUDA tensor without a GPU, handed to the CUDA-key kernel itself
        with pytest.raises(ValueError, match="generated without the 'cuda' target"):
            through_cuda_key(namespace, "forward", torch.zeros(3, pkg.D, dtype=torch.float64, device="cuda"))


# -- CUDA, on a GPU (benchmarks/gpu.sh selects tests named *cuda*) ---------------------------------------------


def _no_cuda_device() -> str | None:
    why = torch_cuda_unavailable()
    if why is None and not torch.cuda.is_available():
        why = "no GPU: torch.cuda.is_available() is False (a CPU build of PyTorch, or no device)"
    return why


needs_gpu = pytest.mark.skipif(_no_cuda_device() is not None, reason=f"needs a CUDA GPU with CuPy: {_no_cuda_device()}")


@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_cuda_operators_match_the_c_kernels(dtype):
    module = committed()
    ops = module.torch_library_ops()
    tol = {"rtol": 1e-11, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-4}
    for k, op in enumerate(OPS):
        args = random_args(module, op, 300, dtype, k)
        out = ops[op](*(a.cuda() for a in args))
        assert out.device.type == "cuda" and out.dtype == dtype
        np.testing.assert_allclose(out.cpu().numpy(), c_kernel(module, op, *args), err_msg=op, **tol)
        torch.library.opcheck(ops[op], tuple(a.cuda() for a in args))


@needs_gpu
def test_cuda_gradcheck_and_gradgradcheck():
    module = committed()
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(3, module.D))).cuda().requires_grad_(True)
    assert torch.autograd.gradcheck(module.torch_library_invariants, (x,))
    assert torch.autograd.gradgradcheck(module.torch_library_invariants, (x,))


@needs_gpu
def test_cuda_compiled_energy_and_forces_fullgraph(trace_autograd):
    module = committed()
    head = mlp_head(module.K).cuda()

    def energy_and_forces(x):
        energy = head(module.torch_library_invariants(x)).sum()
        (grad,) = torch.autograd.grad(energy, x, create_graph=True)
        return energy, -grad

    xn = np.random.default_rng(0).normal(size=(300, module.D))
    inv = torch.from_numpy(module.forward(xn)).cuda().requires_grad_(True)
    (dE_dI,) = torch.autograd.grad(head(inv).sum(), inv)
    expected_forces = -module.vjp(xn, dE_dI.cpu().numpy())
    # aot_eager: the same fullgraph trace with fake CUDA tensors and the same operator calls as Inductor (to
    # which the operators are opaque too), without tens of seconds of Triton code generation for the MLP in
    # the 200 s that benchmarks/gpu.sh gives the GPU tests; Inductor with the operators is tested on CPU above
    compiled = torch.compile(energy_and_forces, fullgraph=True, backend="aot_eager")
    energy, forces = compiled(torch.from_numpy(xn).cuda().requires_grad_(True))
    assert np.isclose(energy.item(), head(inv).sum().item(), rtol=1e-12)
    assert forces.device.type == "cuda"
    np.testing.assert_allclose(forces.detach().cpu().numpy(), expected_forces, rtol=1e-10, atol=1e-12)


@needs_gpu
def test_cuda_mixed_devices_and_missing_cuda_target_are_clear_errors(package_without_cuda):
    module = committed()
    ops = module.torch_library_ops()
    x = torch.zeros(3, module.D, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match=r"g: expected a tensor on the device of x \(cuda:0\), got cpu"):
        ops["vjp"](x, torch.zeros(3, module.K, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected a tensor on the device of x \(cpu\), got cuda:0"):
        ops["vjp"](x.cpu(), torch.zeros(3, module.K, dtype=torch.float64, device="cuda"))
    with pytest.raises(ValueError, match="generated without the 'cuda' target"):
        package_without_cuda.torch_library_invariants(torch.zeros(3, package_without_cuda.D, device="cuda"))
