"""Target ``torch``: the programs as straight-line PyTorch (``torch_kernels.py``), exported as ``torch_module()``.

Plain tensor code on columns: TorchScript-able, traced by ``torch.compile``
(Inductor fuses it: C++ on CPU, Triton on GPU) and ``torch.export``, and
differentiable to any order by autograd.  Two harness kinds: ``torch-source``
runs the printed kernels (forward, VJP, JVP, HVP) and ``torch-autograd``
differentiates the printed forward with autograd, as a user of
``torch_module()`` does.
"""

from __future__ import annotations

from optinv.codegen.targets.base import Target, backends_for, torch_caller, torch_unavailable
from optinv.codegen.targets.python_source import ColumnPrinter, kernel_module


def torch_kernels(package):
    """The package's ``torch_kernels`` module."""
    return kernel_module(package, "torch_kernels", "torch")


def call_torch_source(package, op: str, arrays):
    import torch

    return getattr(torch_kernels(package), op)(*(torch.from_numpy(a) for a in arrays)).numpy()


TARGET = Target(
    name="torch",
    printer=ColumnPrinter(),
    templates={"torch_kernels.py": "torch_kernels.py.j2"},
    init_template="torch_init.py.j2",
    backends=backends_for("torch-source", call_torch_source, torch_unavailable)
    + backends_for("torch-autograd", torch_caller("cpu", lambda package: torch_kernels(package).forward),
                   torch_unavailable),
)
