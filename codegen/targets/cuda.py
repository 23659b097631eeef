"""Target ``cuda``: one CUDA thread per row, compiled by CuPy (NVRTC) on first use.

Without a GPU the same ``kernels.cu`` runs through the host shim (:mod:`.cuda_host`,
harness kind ``cuda-host``), so its indexing and launch bounds are checked everywhere.
"""

from __future__ import annotations

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets.cuda_host import call_cuda_host, cxx_unavailable
from optinv.codegen.targets.base import Target, backends_for, call_cupy, cuda_unavailable, torch_caller, \
    torch_cuda_unavailable


TARGET = Target(
    name="cuda",
    printer=KernelPrinter(),
    templates={"kernels.cu": "kernels.cu.j2"},
    loader="CudaKernels",
    attribute="_cuda",
    array_modules=("cupy",),
    backends=backends_for("cuda", call_cupy, cuda_unavailable)
    + backends_for("torch-cuda", torch_caller("cuda"), torch_cuda_unavailable)
    + backends_for("cuda-host", call_cuda_host, cxx_unavailable),
)
