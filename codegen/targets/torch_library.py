"""Target ``torch_library``: the C kernels as PyTorch custom operators, ``torch_library_invariants(x)``.

No files of its own: the package's ``__init__`` binds the runtime module
:mod:`optinv.codegen.runtime.torch_library` to its C kernels.  The harness kind
``torch-library`` runs every op through autograd of the registered operators
(VJP by backward, JVP and HVP by double backward), as a training loop does.
"""

from __future__ import annotations

import json

from optinv.codegen.printer import KernelPrinter
from optinv.codegen.targets import c
from optinv.codegen.targets.base import Target, backends_for, torch_caller, torch_unavailable


class TorchLibraryTarget(Target):
    def init_section(self, env, common: dict) -> str:
        bundled = json.loads(common["request"]).get("bundle_runtime", True)
        return env.get_template(self.init_template).render(common, target=self, bundle_runtime=bundled,
                                                           c_kernels=c.TARGET.attribute)


TARGET = TorchLibraryTarget(
    name="torch_library",
    printer=KernelPrinter(),
    templates={},
    init_template="torch_library_init.py.j2",
    backends=backends_for("torch-library", torch_caller("cpu", lambda package: package.torch_library_invariants),
                          torch_unavailable),
)
