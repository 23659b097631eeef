"""Target ``triton``: the programs as Triton kernels (``triton_kernels.py``), one program per block of rows.

The anchor's approach for GPUs (hippynn's pending polynomial kernel is Triton).
Two harness kinds: ``triton`` runs the kernels on a CUDA device (SKIP without
one), ``triton-interpret`` runs the same file in Triton's interpreter
(``TRITON_INTERPRET=1``) on CPU tensors, so the kernels' indexing, masking
and arithmetic are checked on any machine where triton installs.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from optinv.codegen.targets.base import Target, backends_for, torch_unavailable
from optinv.codegen.targets.python_source import ColumnPrinter, kernel_module


def triton_unavailable() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not importable (pip install triton)"
    return torch_unavailable()


def triton_gpu_unavailable() -> str | None:
    why = triton_unavailable()
    if why:
        return why
    import torch

    return None if torch.cuda.is_available() else "no GPU: torch sees no CUDA device"


def interpreted_kernels(package):
    """The package's ``triton_kernels.py`` loaded afresh with ``TRITON_INTERPRET=1`` (read when kernels are defined)."""
    path = package.PACKAGE_DIR / "triton_kernels.py"
    kernel_module(package, "triton_kernels", "triton")  # the clear error when the file is missing
    name = f"{package.__name__}.triton_kernels_interpreted"
    if name not in sys.modules:
        old = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1"
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            if old is None:
                del os.environ["TRITON_INTERPRET"]
            else:
                os.environ["TRITON_INTERPRET"] = old
        sys.modules[name] = module
    return sys.modules[name]


def call_triton_interpret(package, op: str, arrays):
    import torch

    return getattr(interpreted_kernels(package), op)(*(torch.from_numpy(a) for a in arrays)).numpy()


def call_triton_gpu(package, op: str, arrays):
    import torch

    kernels = kernel_module(package, "triton_kernels", "triton")
    return getattr(kernels, op)(*(torch.from_numpy(a).cuda() for a in arrays)).cpu().numpy()


class TritonPrinter(ColumnPrinter):
    """Column printer; a bare constant is broadcast with ``zero`` (a BLOCK-wide zero vector)."""


TARGET = Target(
    name="triton",
    printer=TritonPrinter(),
    templates={"triton_kernels.py": "triton_kernels.py.j2"},
    backends=backends_for("triton", call_triton_gpu, triton_gpu_unavailable)
    + backends_for("triton-interpret", call_triton_interpret, triton_unavailable),
)
