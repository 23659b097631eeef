"""The torch adapter against plain-torch autograd, order by order (issue 12, case 1).

hop_l1_n2's invariants are ``s`` and ``v . v``; written in plain torch they give
derivatives of every order through torch's own autograd, the independent
reference.  Orders one and two must agree; order three must raise
``ThirdDerivativeError`` whatever the graph looks like (before, one pattern gave
``[0, -15.23, ...]`` where plain torch gives ``[0, -37.50, ...]``), never a
silently wrong number.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from optinv.codegen.runtime.torch_adapter import ThirdDerivativeError  # noqa: E402
from optinv.generated import hop_l1_n2  # noqa: E402


def plain(x):
    """hop_l1_n2 in plain torch: [s, v.v] (its einsums are ``->,s`` and ``i,i->,v,v``)."""
    return torch.stack([x[:, 0], (x[:, 1:4] ** 2).sum(1)], dim=1)


def rows(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, hop_l1_n2.D, generator=g, dtype=torch.float64)


def test_plain_torch_reference_is_the_module():
    x = rows()
    torch.testing.assert_close(hop_l1_n2.torch_invariants(x), plain(x), rtol=1e-14, atol=0)


def orders(fn, x, n_orders):
    """The issue's reproducer: e = sum(I^2), then grad, grad of sum, grad of sum (create_graph each time)."""
    x = x.clone().requires_grad_(True)
    out = [fn(x).pow(2).sum()]
    for _ in range(n_orders):
        (d,) = torch.autograd.grad(out[-1].sum() if out[-1].ndim else out[-1], x, create_graph=True)
        out.append(d)
    return out[1:]


def test_first_and_second_order_match_plain_torch():
    x = rows(1)
    ours, ref = orders(hop_l1_n2.torch_invariants, x, 2), orders(plain, x, 2)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_third_order_is_refused_not_wrong():
    x = rows(2)
    ref = orders(plain, x, 3)[-1]
    assert ref.abs().max() > 1  # plain torch has a nonzero third derivative here
    with pytest.raises(ThirdDerivativeError, match="third derivatives"):
        orders(hop_l1_n2.torch_invariants, x, 3)


@pytest.mark.parametrize("pattern", ["hessian_of_energy", "grad_of_force_norm", "weights_times_grad"])
def test_every_third_order_pattern_raises(pattern):
    """Third derivatives through the forward's backward of the backward, whatever the grad_outputs."""
    x = rows(3).requires_grad_(True)
    fn = hop_l1_n2.torch_invariants
    I = fn(x)
    if pattern == "hessian_of_energy":
        (f,) = torch.autograd.grad(I.sum(), x, create_graph=True)
        (h,) = torch.autograd.grad(f.sum(), x, create_graph=True)  # grad_outputs that need no grad
        target = h.sum()
    elif pattern == "grad_of_force_norm":
        (f,) = torch.autograd.grad((I ** 3).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((f ** 2).sum(), x, create_graph=True)
        target = (h ** 2).sum()
    else:
        w = torch.ones(2, dtype=torch.float64, requires_grad=True)
        (f,) = torch.autograd.grad((I * w).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad(f.pow(2).sum(), x, create_graph=True)
        target = h.sum()
    with pytest.raises(ThirdDerivativeError):
        torch.autograd.grad(target, x)


def test_mixed_derivatives_that_need_only_second_order_are_right():
    """d/dw of a force loss (the HVP's derivative in g and u): exact, against plain torch."""
    x0 = rows(4)
    results = []
    for fn in (hop_l1_n2.torch_invariants, plain):
        x = x0.clone().requires_grad_(True)
        w = torch.tensor([0.7, -1.3], dtype=torch.float64, requires_grad=True)
        (f,) = torch.autograd.grad((fn(x) * w).sum() ** 2, x, create_graph=True)
        (dw,) = torch.autograd.grad(f.pow(2).sum(), w, create_graph=True)
        (dww,) = torch.autograd.grad(dw.sum(), w)
        results.append((dw.detach(), dww))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
