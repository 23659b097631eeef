"""Target ``torch_library``: the kernels as PyTorch custom operators, ``torch_library_invariants(x)``.

No files of its own: the package's ``__init__`` binds the runtime module
:mod:`optinv.codegen.runtime.torch_library` to the torch adapter's kernel
runner (the C kernels for CPU tensors, the CUDA kernels through CuPy for CUDA
tensors when the package has the ``cuda`` target).  Two harness kinds run
every op through autograd of the registered operators (VJP by backward, JVP
and HVP by double backward), as a training loop does: ``torch-library`` on CPU
tensors and ``torch-library-cuda`` on CUDA tensors (SKIP without a GPU).
"""

from __future__ import annotations

import json

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets import c
from optinv.codegen.targets.base import Target, backends_for, torch_caller, torch_cuda_unavailable, \
    torch_unavailable


class TorchLibraryTarget(Target):
    def init_section(self, env, common: dict) -> str:
        bundled = json.loads(common["request"]).get("bundle_runtime", True)
        return env.get_template(self.init_template).render(common, target=self, bundle_runtime=bundled,
                                                           c_kernels=c.TARGET.attribute)


def _invariants(package):
    return package.torch_library_invariants


TARGET = TorchLibraryTarget(
    name="torch_library",
    printer=KernelPrinter(),
    templates={},
    init_template="torch_library_init.py.j2",
    backends=backends_for("torch-library", torch_caller("cpu", _invariants), torch_unavailable)
    + backends_for("torch-library-cuda", torch_caller("cuda", _invariants), torch_cuda_unavailable),
)
